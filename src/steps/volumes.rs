//! Volumes on this machine: a volume's directory (made before the volume, open to the pods'
//! users), the hostPath volume and its claim; the shared data volume on and off.

use super::Steps;
use crate::error::Result;
use crate::exec::StepCtx;
use crate::plan::RecordKey;
use crate::world::VolumeSpec;

/// Makes a volume's directory on this machine, then the volume and its claim.
pub fn ensure(s: &Steps, v: &VolumeSpec, sc: &StepCtx) -> Result<std::path::PathBuf> {
    let dir = s.ctx.state.prepare_host_dir(&v.host_dir)?;
    s.ctx.world.kube.ensure_volume(&s.ctx.target, v, sc.cancel)?;
    Ok(dir)
}

pub fn ensure_shared(s: &Steps, sc: &StepCtx) -> Result<()> {
    let Some(sh) = &s.ctx.desired.shared else {
        return Ok(());
    };
    let v = &sh.volume;
    let dir = ensure(s, v, sc)?;
    s.ctx.app.reporter.info(&format!(
        "   claim {}/{} ({}) shares {}",
        v.namespace,
        v.claim,
        v.access.as_str(),
        dir.display()
    ));
    // What was made, so that switching it off later removes exactly this.
    s.set_record(&RecordKey::SharedVolume, Some(&sh.record()), sc)
}

pub fn remove_shared(s: &Steps, pv: &str, namespace: &str, claim: &str, reason: &str, sc: &StepCtx) -> Result<()> {
    let ctx = s.ctx;
    ctx.world
        .kube
        .delete_volume(&ctx.target, pv, namespace, claim, sc.cancel)?;
    s.set_record(&RecordKey::SharedVolume, None, sc)?;
    let why = reason.split(';').next().unwrap_or("");
    let dir = match &ctx.config.project.shared.path {
        Some(p) => p.clone(),
        None => ctx.state.data_dir().join(crate::components::shared_data::DATA_DIR),
    };
    ctx.app.reporter.info(&format!(
        "   shared-data volume removed: {why}; its files stay in {}",
        dir.display()
    ));
    Ok(())
}

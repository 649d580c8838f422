//! A component's release: `helm upgrade --install` with the user's values and devenv's, then
//! devenv's own readiness wait; clearing a release an interrupted run left stuck; uninstalling one
//! that was switched off.

use super::Steps;
use crate::components::ComponentSpec;
use crate::error::Result;
use crate::exec::{Cancel, Scope, StepCtx};
use crate::plan::RecordKey;
use crate::world::{InstallSpec, ReleaseInfo};

pub fn recover_and_install(s: &Steps, stuck: &ReleaseInfo, c: &ComponentSpec, sc: &StepCtx) -> Result<()> {
    s.ctx.world.helm.recover(&s.ctx.target, stuck, sc.cancel)?;
    install(s, c, false, sc)
}

pub fn uninstall(s: &Steps, release: &str, namespace: &str, reason: &str, sc: &StepCtx) -> Result<()> {
    s.ctx
        .world
        .helm
        .uninstall(&s.ctx.target, release, namespace, sc.cancel)?;
    s.set_record(&RecordKey::Component(release.to_string()), None, sc)?;
    let why = reason.split(';').next().unwrap_or("");
    s.ctx.app.reporter.info(&format!("   {release} uninstalled: {why}"));
    Ok(())
}

/// `fresh`: the release does not exist yet.
pub fn install(s: &Steps, c: &ComponentSpec, fresh: bool, sc: &StepCtx) -> Result<()> {
    let ctx = s.ctx;
    let state = &ctx.state;
    let mut files = Vec::new();
    for v in &c.values {
        files.push(match &v.path {
            Some(p) => p.clone(),
            None => state.write_private(&format!("values/{}.yaml", c.name), &v.text)?,
        });
    }
    // devenv's values: one mapping, written once, after the user's files so that it wins.
    // Generated passwords reach the chart in this user-only file only, never on a command line.
    let generated = if c.secrets.is_empty() {
        c.generated.clone()
    } else {
        let creds = state.credentials()?;
        c.generated_with(|s| creds.secret(s).to_string())
    };
    if generated.as_object().is_some_and(|m| !m.is_empty()) {
        files.push(state.write_private(
            &format!("values/{}.devenv.yaml", c.name),
            &crate::components::values::to_yaml(&generated),
        )?);
    }
    for v in &c.volumes {
        super::volumes::ensure(s, v, sc)?;
    }
    let spec = InstallSpec {
        release: c.name.clone(),
        namespace: c.namespace.clone(),
        chart: c.chart.chart.clone(),
        repository: c.chart.repository.clone(),
        version: c.chart.version.clone(),
        values_files: files,
        timeout: s.timeouts.component,
    };
    let key = RecordKey::Component(c.name.clone());
    // A release this run is adding to a cluster that already existed is removed again if its
    // install does not complete (helm would otherwise leave it `pending-install`).
    let undo = (fresh && !s.fresh_cluster).then(|| {
        let (helm, kube, t, rel, ns, env, key) = (
            ctx.world.helm.clone(),
            ctx.world.kube.clone(),
            ctx.target.clone(),
            c.name.clone(),
            c.namespace.clone(),
            ctx.desired.name.clone(),
            key.key(),
        );
        sc.ledger.record(
            format!("release {rel} (half-installed by this run)"),
            Scope::OnFailure,
            move || {
                helm.uninstall(&t, &rel, &ns, &Cancel::new())?;
                kube.set_applied(&t, &env, &key, None, &Cancel::new())
            },
        )
    });
    // Recorded before helm runs: a release that never gets ready is still devenv's, so that
    // switching it off later uninstalls it.
    if fresh {
        s.set_record(&key, Some(crate::plan::INSTALLING), sc)?;
    }
    ctx.world
        .helm
        .upgrade_install(&ctx.target, &spec, sc.cancel)
        .map_err(|e| with_change_help(e, c, ctx))?;
    wait_ready(s, c, sc)?;
    if let Some(id) = undo {
        sc.ledger.forget(id);
    }
    s.set_record(&key, Some(&c.digest), sc)
}

/// Ready means every workload of the release (then what its operator makes), within the
/// component timeout; when it is not, the error says why.
pub fn wait_ready(s: &Steps, c: &ComponentSpec, sc: &StepCtx) -> Result<()> {
    let ctx = s.ctx;
    let started = std::time::Instant::now();
    for w in &c.ready {
        let left = s.timeouts.component.saturating_sub(started.elapsed());
        ctx.world
            .kube
            .wait_ready(&ctx.target, w, left.max(std::time::Duration::from_secs(1)), sc.cancel)?;
    }
    Ok(())
}

/// The API server refuses some changes to a StatefulSet in place (its volume claim templates:
/// PostgreSQL's storage size or class): say what it takes, and what happens to the data.
fn with_change_help(
    e: crate::error::Error,
    c: &crate::plan::ComponentSpec,
    ctx: &crate::context::Context,
) -> crate::error::Error {
    let message = e.to_string();
    if !message.contains("Forbidden: updates to statefulset spec") {
        return e;
    }
    crate::error::Error::failed(
        message,
        format!(
            "a StatefulSet's volume claims (such as {name}'s storage size) cannot change in place: the claim must be made anew. Put the value back in helm-values/{name}.yaml, or run `devenv up --recreate`: {}",
            ctx.desired.deletion_keeps(Some(&ctx.state.data_dir())),
            name = c.name
        ),
    )
}

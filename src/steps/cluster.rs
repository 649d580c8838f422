//! The cluster steps: create (with the node paths devenv mounts and its own readiness check),
//! recreate, start exited nodes, and devenv's kubeconfig for the cluster.

use super::Steps;
use crate::context::Context;
use crate::error::Result;
use crate::exec::{Cancel, Scope, StepCtx};
use crate::plan::RecordKey;
use crate::world::ClusterSpec;

pub fn write_kubeconfig(ctx: &Context, cancel: &Cancel) -> Result<()> {
    let text = ctx.world.cluster.kubeconfig(ctx.name(), cancel)?;
    ctx.state.write_private("kubeconfig", &text).map(|_| ())
}

pub fn start(s: &Steps, sc: &StepCtx) -> Result<()> {
    s.ctx.world.cluster.start(s.ctx.name(), sc.cancel)
}

pub fn recreate(s: &Steps, sc: &StepCtx) -> Result<()> {
    s.ctx.world.cluster.delete(s.ctx.name(), sc.cancel)?;
    let _ = std::fs::remove_file(s.ctx.state.kubeconfig());
    create(s, sc)
}

/// A create is done only when the cluster exists, its kubeconfig is written, every node is Ready
/// and devenv has recorded how it was built. Until then the ledger deletes it again, so that the
/// next `up` never adopts a cluster devenv cannot compare with the files.
pub fn create(s: &Steps, sc: &StepCtx) -> Result<()> {
    let ctx = s.ctx;
    let (desired, state) = (&ctx.desired, &ctx.state);
    let mut mounts = Vec::new();
    if desired.mounts.contains(&crate::config::kind::DATA_MOUNT) {
        // The data directory outlives the cluster: `down` keeps it, `down --purge` removes it.
        mounts.push((state.prepare_data_dir()?, crate::config::kind::DATA_MOUNT));
    }
    if let Some(sh) = desired.shared.as_ref().filter(|s| s.user_dir().is_some()) {
        let dir = state.prepare_host_dir(&sh.volume.host_dir)?;
        mounts.push((dir, crate::config::kind::SHARED_MOUNT));
    }
    let kind_config = if mounts.is_empty() {
        ctx.config.kind_config_text.clone()
    } else {
        crate::config::kind::with_mounts(&ctx.config.kind_config_text, &mounts)?
    };
    let config_path = state.write_private("kind-config.yaml", &kind_config)?;
    let spec = ClusterSpec {
        name: desired.name.clone(),
        node_image: ctx.config.versions.kind_node_image.clone(),
        config_path,
        kubernetes_version: ctx.config.versions.minikube_kubernetes.clone(),
        wait: s.timeouts.cluster,
    };
    let cluster = ctx.world.cluster.clone();
    let name = spec.name.clone();
    let kubeconfig = state.kubeconfig();
    // Before the cluster exists: the ports it is made with (when they are the environment's
    // own), and that a create is under way. If this run dies before the create is done, the
    // next one recognises the containers as a half-made cluster of devenv's, not as one to keep.
    if ctx.config.wants_own_ports() {
        let ports = ctx
            .config
            .kind
            .mappings
            .iter()
            .map(|m| (m.container_port, m.host_port))
            .collect();
        state.set_ports(Some(&ports))?;
    }
    state.set_creating(true)?;
    let st = state.clone();
    let undo = sc.ledger.record(
        format!("cluster {name} (half-created by this run)"),
        Scope::OnFailure,
        move || {
            let _ = std::fs::remove_file(&kubeconfig);
            cluster.delete(&name, &Cancel::new())?;
            st.set_creating(false)
        },
    );
    ctx.world.cluster.create(&spec, sc.cancel)?;
    write_kubeconfig(ctx, sc.cancel)?;
    // kind's own --wait only warns when it runs out of time; this one fails.
    ctx.world
        .kube
        .wait_nodes_ready(&ctx.target, s.timeouts.cluster, sc.cancel)?;
    s.set_record(&RecordKey::Format, Some(crate::commands::RECORD_FORMAT), sc)?;
    // Which node paths this cluster has: a volume needing a missing one waits for --recreate.
    s.set_record(&RecordKey::Mounts, Some(&desired.mounts.join(",")), sc)?;
    s.set_record(&RecordKey::Cluster, Some(&desired.cluster_digest), sc)?;
    sc.ledger.forget(undo);
    state.set_creating(false)
}

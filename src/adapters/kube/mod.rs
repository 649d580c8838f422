//! The Kubernetes API through kube-rs, always with the environment's own kubeconfig and an
//! explicit context, split by concern: `client.rs` (the client for one target and the runtime),
//! `record.rs` (devenv's records), `wait.rs` (readiness), `helm_storage.rs` (helm's releases from
//! its Secrets), `objects.rs` (the objects devenv writes, pure), `smoke.rs` and `volumes.rs`.

mod client;
pub mod helm_storage;
pub mod objects;
pub mod record;
mod smoke;
mod volumes;
mod wait;

pub use client::{connect, is_webhook_race};
pub use helm_storage::{release_from_secret, releases_from_labels, releases_from_secrets};
pub use objects::{shared_job_object, smoke_job_object, smoke_objects, volume_objects};
pub use record::{ENV_LABEL, RECORD_NAMESPACE, configmap_name};

use crate::error::Result;
use crate::exec::Cancel;
use crate::world::{Applied, Kube, KubeTarget, ReleaseInfo, SmokeNamespace, SmokeSpec, VolumeSpec, Workloads};
use std::time::Duration;

#[derive(Default)]
pub struct KubeApi {
    /// `HELM_DRIVER` as devenv was started with: helm keeps releases in Secrets unless it names
    /// another storage.
    pub helm_driver: Option<String>,
}

impl Kube for KubeApi {
    fn records(&self, t: &KubeTarget, cancel: &Cancel) -> Result<Vec<(String, Applied)>> {
        record::records(t, cancel)
    }

    fn set_applied(&self, t: &KubeTarget, env: &str, key: &str, value: Option<&str>, cancel: &Cancel) -> Result<()> {
        record::set_applied(t, env, key, value, cancel)
    }

    fn wait_nodes_ready(&self, t: &KubeTarget, timeout: Duration, cancel: &Cancel) -> Result<()> {
        wait::wait_nodes_ready(t, timeout, cancel)
    }

    fn server_version(&self, t: &KubeTarget, cancel: &Cancel) -> Result<String> {
        client::server_version(t, cancel)
    }

    fn delete_applied(&self, t: &KubeTarget, env: &str, cancel: &Cancel) -> Result<()> {
        record::delete_applied(t, env, cancel)
    }

    fn wait_ready(&self, t: &KubeTarget, w: &Workloads, timeout: Duration, cancel: &Cancel) -> Result<()> {
        wait::wait_ready(t, w, timeout, cancel)
    }

    fn create_smoke_namespace(&self, t: &KubeTarget, s: &SmokeSpec, cancel: &Cancel) -> Result<()> {
        smoke::create_smoke_namespace(t, s, cancel)
    }

    fn smoke_echo(&self, t: &KubeTarget, s: &SmokeSpec, timeout: Duration, cancel: &Cancel) -> Result<()> {
        smoke::smoke_echo(t, s, timeout, cancel)
    }

    fn smoke_job(
        &self,
        t: &KubeTarget,
        s: &SmokeSpec,
        targets: &[(String, u16)],
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<()> {
        smoke::smoke_job(t, s, targets, timeout, cancel)
    }

    fn smoke_namespaces(&self, t: &KubeTarget, env: &str, cancel: &Cancel) -> Result<Vec<SmokeNamespace>> {
        smoke::smoke_namespaces(t, env, cancel)
    }

    fn ensure_volume(&self, t: &KubeTarget, v: &VolumeSpec, cancel: &Cancel) -> Result<()> {
        volumes::ensure_volume(t, v, cancel)
    }

    fn delete_namespace(&self, t: &KubeTarget, name: &str, cancel: &Cancel) -> Result<()> {
        smoke::delete_namespace(t, name, cancel)
    }

    fn delete_volume(&self, t: &KubeTarget, pv: &str, namespace: &str, claim: &str, cancel: &Cancel) -> Result<()> {
        volumes::delete_volume(t, pv, namespace, claim, cancel)
    }

    fn helm_releases(&self, t: &KubeTarget, charts: bool, cancel: &Cancel) -> Result<Option<Vec<ReleaseInfo>>> {
        helm_storage::helm_releases(t, self.helm_driver.as_deref(), charts, cancel)
    }

    fn node_metrics(&self, t: &KubeTarget, timeout: Duration, cancel: &Cancel) -> Result<()> {
        smoke::node_metrics(t, timeout, cancel)
    }

    fn smoke_shared(
        &self,
        t: &KubeTarget,
        s: &SmokeSpec,
        v: &VolumeSpec,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<()> {
        smoke::smoke_shared(t, s, v, timeout, cancel)
    }
}

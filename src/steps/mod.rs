//! What each step of a plan does, one file per kind of step (in the spirit of kind's `actions/`):
//! `cluster.rs` (create, recreate, start, the kubeconfig), `release.rs` (install, recover,
//! uninstall), `volumes.rs` (a volume's directory, the volume and its claim; the shared data
//! volume), `images.rs` (loading local images), `smoke.rs` (the smoke run). The executor runs them
//! (`crate::exec`); commands only build the context, plan and report.

pub mod cluster;
pub mod images;
pub mod release;
pub mod smoke;
pub mod volumes;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::exec::StepCtx;
use crate::plan::{Action, Change, Step};

/// Everything a step needs besides the step itself.
pub struct Steps<'c> {
    pub ctx: &'c Context<'c>,
    pub timeouts: crate::config::project::Timeouts,
    /// The plan creates (or recreates) the cluster, so nothing in it predates this run.
    pub fresh_cluster: bool,
    /// The shared data volume waits for `up --recreate`: no shared check.
    pub shared_waits: bool,
}

impl Steps<'_> {
    pub fn run(&self, step: &Step, sc: &StepCtx) -> Result<()> {
        let component = |name: &str| {
            self.ctx
                .desired
                .components
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| Error::failed(format!("the plan names no component `{name}`"), ""))
        };
        match &step.action {
            Action::Nothing => Ok(()),
            Action::CreateCluster => cluster::create(self, sc),
            Action::RecreateCluster | Action::ReplaceHalfMade => cluster::recreate(self, sc),
            Action::WaitReady(name) => release::wait_ready(self, component(name)?, sc),
            Action::StartCluster => cluster::start(self, sc),
            Action::WriteKubeconfig => cluster::write_kubeconfig(self.ctx, sc.cancel),
            Action::Install(name) => release::install(self, component(name)?, step.change == Change::Create, sc),
            Action::RecoverAndInstall(stuck, name) => release::recover_and_install(self, stuck, component(name)?, sc),
            Action::Uninstall { release, namespace } => release::uninstall(self, release, namespace, &step.reason, sc),
            Action::EnsureShared => volumes::ensure_shared(self, sc),
            Action::RemoveShared { pv, namespace, claim } => {
                volumes::remove_shared(self, pv, namespace, claim, &step.reason, sc)
            }
            Action::LoadImages => images::load(self, sc),
            Action::CacheImages => images::load_cache(self, sc),
            Action::Smoke => smoke::run_and_record(
                &smoke::Smoke::of(self.ctx, self.timeouts.test, self.shared_waits),
                sc,
                &self.ctx.app.reporter,
                None,
            ),
        }
    }

    pub fn set_record(&self, key: &crate::plan::RecordKey, value: Option<&str>, sc: &StepCtx) -> Result<()> {
        self.ctx
            .world
            .kube
            .set_applied(&self.ctx.target, self.ctx.name(), &key.key(), value, sc.cancel)
    }
}

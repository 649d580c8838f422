//! The helm adapter: Helm 3 and Helm 4 command lines, always with an explicit kubeconfig and context.

use super::run;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::process::{Cmd, Runner};
use crate::world::{Helm as HelmApi, InstallSpec, KubeTarget, ReleaseInfo};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub struct Helm {
    pub runner: Arc<dyn Runner>,
    major: OnceLock<u32>,
}

/// `helm version --short` prints e.g. `v3.21` or `v4.2.0+g1234567`.
pub fn parse_major(stdout: &str) -> Option<u32> {
    stdout.trim().strip_prefix('v')?.split(['.', '+']).next()?.parse().ok()
}

pub fn parse_list(stdout: &str) -> Result<Vec<ReleaseInfo>> {
    if stdout.trim().is_empty() {
        return Ok(vec![]);
    }
    serde_json::from_str::<Vec<ReleaseInfo>>(stdout).map_err(|e| {
        Error::failed(
            format!(
                "`helm list --output json` printed something that is not a release list ({e}): {}",
                stdout.chars().take(200).collect::<String>()
            ),
            "check that `helm` on PATH is Helm 3 or 4 (`helm version`)",
        )
    })
}

impl Helm {
    pub fn new(runner: Arc<dyn Runner>) -> Self {
        Helm {
            runner,
            major: OnceLock::new(),
        }
    }

    fn target_args(t: &KubeTarget) -> Vec<String> {
        vec![
            "--kubeconfig".into(),
            t.kubeconfig.display().to_string(),
            "--kube-context".into(),
            t.context.clone(),
        ]
    }

    fn major(&self, cancel: &Cancel) -> Result<u32> {
        if let Some(m) = self.major.get() {
            return Ok(*m);
        }
        let out = run(
            &self.runner,
            Cmd::new("helm")
                .args(["version", "--short"])
                .timeout(Duration::from_secs(30)),
            cancel,
            "",
        )?;
        let m = parse_major(&out).ok_or_else(|| {
            Error::failed(
                format!(
                    "cannot read the Helm version from `helm version --short`: {}",
                    out.trim()
                ),
                "install Helm 3 or 4",
            )
        })?;
        Ok(*self.major.get_or_init(|| m))
    }

    /// The `helm upgrade --install` command line for a Helm major version.
    pub fn install_cmd(major: u32, t: &KubeTarget, s: &InstallSpec) -> Cmd {
        let mut c = Cmd::new("helm").args(["upgrade", "--install", &s.release, &s.chart]);
        if let Some(repo) = &s.repository {
            c = c.args(["--repo", repo]);
        }
        if let Some(v) = &s.version {
            c = c.args(["--version", v]);
        }
        c = c
            .args(["--namespace", &s.namespace, "--create-namespace"])
            .args(Self::target_args(t));
        for f in &s.values_files {
            c = c.args(["--values".to_string(), f.display().to_string()]);
        }
        // helm waits for the chart's hooks only; devenv then waits for readiness itself through
        // the API, so that a component that does not come up is explained (pods, reasons, logs).
        // Helm 3 waits for hooks by default; Helm 4 says so with its `hookOnly` strategy.
        c = c.args(["--timeout", &format!("{}s", s.timeout.as_secs())]);
        if major >= 4 {
            c = c.args(["--wait=hookOnly"]);
        }
        c.timeout(s.timeout + Duration::from_secs(120))
    }
}

impl HelmApi for Helm {
    fn list(&self, t: &KubeTarget, cancel: &Cancel) -> Result<Vec<ReleaseInfo>> {
        let out = run(
            &self.runner,
            Cmd::new("helm")
                .args(["list", "--all", "--all-namespaces", "--output", "json"])
                .args(Self::target_args(t))
                .timeout(Duration::from_secs(60)),
            cancel,
            "is the cluster reachable? `devenv status` says",
        )?;
        parse_list(&out)
    }

    fn upgrade_install(&self, t: &KubeTarget, s: &InstallSpec, cancel: &Cancel) -> Result<()> {
        let major = self.major(cancel)?;
        run(
            &self.runner,
            Self::install_cmd(major, t, s),
            cancel,
            &format!(
                "`devenv status` shows why {} is not ready; the values come from helm-values/{}.yaml",
                s.release, s.release
            ),
        )
        .map(|_| ())
    }

    fn uninstall(&self, t: &KubeTarget, release: &str, namespace: &str, cancel: &Cancel) -> Result<()> {
        run(
            &self.runner,
            Cmd::new("helm")
                .args(["uninstall", release, "--namespace", namespace, "--wait"])
                .args(Self::target_args(t))
                .timeout(Duration::from_secs(300)),
            cancel,
            "",
        )
        .map(|_| ())
    }

    fn recover(&self, t: &KubeTarget, r: &ReleaseInfo, cancel: &Cancel) -> Result<()> {
        // A release that never got installed is removed; one stuck mid-upgrade is rolled back.
        let cmd = if r.status == "pending-install" || r.status == "uninstalling" {
            Cmd::new("helm").args(["uninstall", &r.name, "--namespace", &r.namespace])
        } else {
            Cmd::new("helm").args(["rollback", &r.name, "--namespace", &r.namespace])
        };
        run(
            &self.runner,
            cmd.args(Self::target_args(t)).timeout(Duration::from_secs(300)),
            cancel,
            &format!(
                "clear it by hand: helm history {} -n {} then helm rollback or helm uninstall",
                r.name, r.namespace
            ),
        )
        .map(|_| ())
    }
}

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

    /// Every value joined to its flag (`--kube-context=X`), so that no value can be read as a
    /// flag of its own; release and chart names go after `--`.
    fn target_args(t: &KubeTarget) -> Vec<String> {
        vec![
            format!("--kubeconfig={}", t.kubeconfig.display()),
            format!("--kube-context={}", t.context),
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
        let mut c = Cmd::new("helm").args(["upgrade", "--install"]);
        if let Some(repo) = &s.repository {
            c = c.arg(format!("--repo={repo}"));
        }
        if let Some(v) = &s.version {
            c = c.arg(format!("--version={v}"));
        }
        c = c
            .args([format!("--namespace={}", s.namespace), "--create-namespace".into()])
            .args(Self::target_args(t));
        for f in &s.values_files {
            c = c.arg(format!("--values={}", f.display()));
        }
        // helm waits for the chart's hooks only; devenv then waits for readiness itself through
        // the API, so that a component that does not come up is explained (pods, reasons, logs).
        // Helm 3 waits for hooks by default; Helm 4 says so with its `hookOnly` strategy.
        c = c.arg(format!("--timeout={}s", s.timeout.as_secs()));
        if major >= 4 {
            c = c.args(["--wait=hookOnly"]);
        }
        c.args(["--", &s.release, &s.chart])
            .timeout(s.timeout + Duration::from_secs(120))
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
                .args([
                    "uninstall".to_string(),
                    format!("--namespace={namespace}"),
                    "--wait".into(),
                ])
                .args(Self::target_args(t))
                .args(["--", release])
                .timeout(Duration::from_secs(300)),
            cancel,
            "",
        )
        .map(|_| ())
    }

    fn recover(&self, t: &KubeTarget, r: &ReleaseInfo, cancel: &Cancel) -> Result<()> {
        // A release that never got installed is removed; one stuck mid-upgrade is rolled back.
        let verb = if r.status == "pending-install" || r.status == "uninstalling" {
            "uninstall"
        } else {
            "rollback"
        };
        let cmd = Cmd::new("helm")
            .args([verb.to_string(), format!("--namespace={}", r.namespace)])
            .args(Self::target_args(t))
            .args(["--", &r.name]);
        run(
            &self.runner,
            cmd.timeout(Duration::from_secs(300)),
            cancel,
            &format!(
                "clear it by hand: helm history {} -n {} then helm rollback or helm uninstall",
                r.name, r.namespace
            ),
        )
        .map(|_| ())
    }
}

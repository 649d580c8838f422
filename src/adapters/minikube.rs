//! The minikube cluster provider: one profile per environment.

use super::run;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::process::{Cmd, RunError, Runner};
use crate::world::{ClusterProvider, ClusterSpec, ClusterState, NodeState};
use std::sync::Arc;
use std::time::Duration;

pub struct Minikube {
    pub runner: Arc<dyn Runner>,
    /// `--driver` to pass, when devenv.yaml names one; otherwise minikube picks (docker first).
    pub driver: Option<String>,
    /// false: `--keep-context`, so the user's current context is not switched.
    pub export_context: bool,
}

/// One profile from `minikube profile list -o json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub status: String,
}

/// Parses `minikube profile list -o json`: `{"invalid":[…],"valid":[{"Name":…,"Status":…},…]}`.
pub fn parse_profiles(stdout: &str) -> Result<Vec<Profile>> {
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        Error::failed(
            format!(
                "`minikube profile list -o json` printed something that is not JSON ({e}): {}",
                stdout.chars().take(120).collect::<String>()
            ),
            "run it by hand; if minikube itself fails, `minikube delete -p NAME` clears a broken profile",
        )
    })?;
    let mut out = Vec::new();
    for (list, valid) in [("valid", true), ("invalid", false)] {
        for p in v.get(list).and_then(|l| l.as_array()).into_iter().flatten() {
            let name = p.get("Name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
            let status = if valid {
                p.get("Status")
                    .and_then(|s| s.as_str())
                    .unwrap_or("Unknown")
                    .to_string()
            } else {
                "Invalid".to_string()
            };
            out.push(Profile { name, status });
        }
    }
    Ok(out)
}

/// minikube's statuses that mean the cluster answers (newer releases say "OK", older "Running").
fn is_up(status: &str) -> bool {
    matches!(status, "Running" | "OK" | "Degraded")
}

/// minikube explains its own failures with a reason code; the common ones get a one-line fix.
pub fn advice(output: &str) -> Option<&'static str> {
    if output.contains("DRV_NOT_DETECTED") {
        Some(
            "minikube found no driver: install and start Docker (or podman), or set the driver in devenv.yaml (`minikube: {driver: …}`)",
        )
    } else if output.contains("PR_DOCKER_IP_CONFLICT") {
        Some("the cluster's network clashes with one on this machine (a VPN?); disconnect it or delete the profile")
    } else if output.contains("RSRC_INSUFFICIENT") {
        Some("not enough CPU, memory or disk for the cluster; free some, or raise Docker's limits")
    } else {
        None
    }
}

impl Minikube {
    pub fn start_cmd(&self, spec: &ClusterSpec) -> Cmd {
        let mut c = Cmd::new("minikube").args([
            "start",
            "--profile",
            &spec.name,
            "--kubernetes-version",
            &spec.kubernetes_version,
        ]);
        if let Some(d) = &self.driver {
            c = c.args(["--driver", d]);
        }
        if !self.export_context {
            c = c.arg("--keep-context");
        }
        c.args(["--wait", "all", "--wait-timeout", &format!("{}s", spec.wait.as_secs())])
            .timeout(spec.wait + Duration::from_secs(300))
    }

    fn run_explained(&self, cmd: Cmd, cancel: &Cancel) -> Result<String> {
        match self.runner.run(&cmd, cancel) {
            Ok(o) => Ok(o.stdout),
            Err(e) => {
                let text = match &e {
                    RunError::Failed { stdout, stderr, .. } => format!("{stdout}\n{stderr}"),
                    _ => String::new(),
                };
                Err(e.into_error(cancel, advice(&text).unwrap_or("`minikube logs` shows what happened")))
            }
        }
    }
}

impl ClusterProvider for Minikube {
    fn observe(&self, name: &str, cancel: &Cancel) -> Result<ClusterState> {
        let cmd = Cmd::new("minikube")
            .args(["profile", "list", "--output", "json"])
            .timeout(Duration::from_secs(60));
        let stdout = match self.runner.run(&cmd, cancel) {
            Ok(o) => o.stdout,
            // With no profile at all, minikube exits non-zero; that is simply "absent".
            Err(RunError::Failed { stdout, stderr, .. })
                if format!("{stdout}{stderr}").contains("No minikube profile") =>
            {
                return Ok(ClusterState::Absent);
            }
            Err(e) => return Err(e.into_error(cancel, "")),
        };
        Ok(match parse_profiles(&stdout)?.into_iter().find(|p| p.name == name) {
            None => ClusterState::Absent,
            Some(p) => ClusterState::Present {
                nodes: vec![NodeState {
                    name: p.name,
                    role: "control-plane".into(),
                    running: is_up(&p.status),
                }],
            },
        })
    }

    fn create(&self, spec: &ClusterSpec, cancel: &Cancel) -> Result<()> {
        self.run_explained(self.start_cmd(spec), cancel).map(|_| ())
    }

    fn delete(&self, name: &str, cancel: &Cancel) -> Result<()> {
        self.run_explained(
            Cmd::new("minikube")
                .args(["delete", "--profile", name])
                .timeout(Duration::from_secs(300)),
            cancel,
        )
        .map(|_| ())
    }

    fn start(&self, name: &str, cancel: &Cancel) -> Result<()> {
        self.run_explained(
            Cmd::new("minikube")
                .args(["start", "--profile", name])
                .timeout(Duration::from_secs(600)),
            cancel,
        )
        .map(|_| ())
    }

    fn stop(&self, name: &str, cancel: &Cancel) -> Result<()> {
        self.run_explained(
            Cmd::new("minikube")
                .args(["stop", "--profile", name])
                .timeout(Duration::from_secs(300)),
            cancel,
        )
        .map(|_| ())
    }

    fn kubeconfig(&self, name: &str, cancel: &Cancel) -> Result<String> {
        super::kubectl::view_context(&self.runner, name, cancel)
    }

    fn context(&self, name: &str) -> String {
        name.to_string()
    }

    fn list(&self, cancel: &Cancel) -> Result<Vec<String>> {
        let cmd = Cmd::new("minikube")
            .args(["profile", "list", "--output", "json"])
            .timeout(Duration::from_secs(60));
        match self.runner.run(&cmd, cancel) {
            Ok(o) => Ok(parse_profiles(&o.stdout)?.into_iter().map(|p| p.name).collect()),
            Err(RunError::Failed { stdout, stderr, .. })
                if format!("{stdout}{stderr}").contains("No minikube profile") =>
            {
                Ok(vec![])
            }
            Err(e) => Err(e.into_error(cancel, "")),
        }
    }

    fn load_images(
        &self,
        name: &str,
        images: &[String],
        _progress: &(dyn Fn(&str, u64) + Sync),
        cancel: &Cancel,
    ) -> Result<crate::world::LoadReport> {
        let mut report = crate::world::LoadReport {
            images: vec![],
            bytes: 0,
        };
        for image in images {
            let cmd = Cmd::new("minikube")
                .args(["image", "load", "--profile", name, image])
                .timeout(Duration::from_secs(600));
            run(
                &self.runner,
                cmd,
                cancel,
                "check that the image exists locally: docker image inspect IMAGE",
            )?;
            report.images.push((
                image.clone(),
                crate::world::LoadOutcome::Loaded {
                    nodes: vec![name.to_string()],
                    retagged: vec![],
                    bytes: 0,
                },
            ));
        }
        Ok(report)
    }
}

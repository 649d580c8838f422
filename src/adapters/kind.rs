//! The kind cluster provider: `kind` for the cluster, `docker` for its node containers.

use super::run;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::process::{Cmd, RunError, Runner};
use crate::world::{ClusterProvider, ClusterSpec, ClusterState, NodeState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
pub const ROLE_LABEL: &str = "io.x-k8s.kind.role";
const QUICK: Duration = Duration::from_secs(30);

pub struct Kind {
    pub runner: Arc<dyn Runner>,
    /// Where `kind export logs` puts the logs of a failed create.
    pub logs_dir: PathBuf,
}

/// `kind get clusters` prints one name per line on stdout ("No kind clusters found." goes to stderr).
pub fn parse_clusters(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The `--format` given to `docker ps` and the parser of its lines: name, role, state.
pub const NODE_FORMAT: &str = "{{.Names}}\t{{.Label \"io.x-k8s.kind.role\"}}\t{{.State}}";

pub fn parse_nodes(stdout: &str) -> Vec<NodeState> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let name = f.next().unwrap_or("").trim().to_string();
            let role = f.next().unwrap_or("").trim().to_string();
            let state = f.next().unwrap_or("").trim();
            NodeState {
                name,
                role,
                running: state == "running",
            }
        })
        .collect()
}

/// Recognises the container engine being unreachable in a docker command's stderr, with the fix.
pub fn engine_unreachable(stderr: &str) -> Option<(String, String)> {
    let line = stderr.lines().find(|l| !l.trim().is_empty())?.trim().to_string();
    if line.contains("Cannot connect to the Docker daemon") {
        return Some((
            format!("the Docker engine is not running ({line})"),
            "start Docker (Docker Desktop, or `sudo systemctl start docker`), then run devenv again".into(),
        ));
    }
    if line.contains("permission denied") && line.contains("docker") {
        return Some((
            format!("this user may not use Docker ({line})"),
            "add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in again)".into(),
        ));
    }
    None
}

impl Kind {
    /// Runs a docker command; an unreachable engine is a missing prerequisite (exit 3), not a failure.
    fn docker(&self, cmd: Cmd, cancel: &Cancel, help: &str) -> Result<String> {
        match self.runner.run(&cmd, cancel) {
            Ok(o) => Ok(o.stdout),
            Err(RunError::Failed { stderr, .. }) if engine_unreachable(&stderr).is_some() => {
                let (msg, help) = engine_unreachable(&stderr).unwrap_or_default();
                Err(Error::prerequisite(msg, help))
            }
            Err(e) => Err(e.into_error(cancel, help)),
        }
    }

    pub fn create_cmd(spec: &ClusterSpec) -> Cmd {
        Cmd::new("kind")
            .args([
                "create",
                "cluster",
                "--name",
                &spec.name,
                "--image",
                &spec.node_image,
                "--config",
            ])
            .arg(spec.config_path.display().to_string())
            .args(["--retain", "--wait", &format!("{}s", spec.wait.as_secs())])
            .timeout(spec.wait + Duration::from_secs(300))
    }

    pub fn nodes_cmd(name: &str) -> Cmd {
        Cmd::new("docker")
            .args([
                "ps",
                "--all",
                "--filter",
                &format!("label={CLUSTER_LABEL}={name}"),
                "--format",
                NODE_FORMAT,
            ])
            .timeout(QUICK)
    }
}

impl ClusterProvider for Kind {
    /// One `docker ps` by kind's cluster label: kind's own `get clusters` does the same lookup.
    fn observe(&self, name: &str, cancel: &Cancel) -> Result<ClusterState> {
        let nodes = parse_nodes(&self.docker(
            Self::nodes_cmd(name),
            cancel,
            "`docker info` should answer; `devenv doctor` checks",
        )?);
        Ok(if nodes.is_empty() {
            ClusterState::Absent
        } else {
            ClusterState::Present { nodes }
        })
    }

    fn create(&self, spec: &ClusterSpec, cancel: &Cancel) -> Result<()> {
        match self.runner.run(&Self::create_cmd(spec), cancel) {
            Ok(_) => Ok(()),
            Err(e) => {
                let interrupted = cancel.is_cancelled();
                // --retain kept the nodes so that their logs can be read; collect them, then delete.
                let logs = self.logs_dir.join(format!("create-{}", std::process::id()));
                let fresh = Cancel::new();
                let exported = self
                    .runner
                    .run(
                        &Cmd::new("kind")
                            .args(["export", "logs"])
                            .arg(logs.display().to_string())
                            .args(["--name", &spec.name])
                            .timeout(Duration::from_secs(120)),
                        &fresh,
                    )
                    .is_ok();
                let _ = self.delete(&spec.name, &fresh);
                if interrupted {
                    return Err(cancel.error());
                }
                let help = if exported {
                    format!(
                        "the nodes' logs are in {}; `devenv doctor` checks the usual causes (ports, disk, inotify)",
                        logs.display()
                    )
                } else {
                    "`devenv doctor` checks the usual causes (ports in use, disk, inotify limits)".to_string()
                };
                Err(e.into_error(cancel, &help))
            }
        }
    }

    fn delete(&self, name: &str, cancel: &Cancel) -> Result<()> {
        run(&self.runner, Cmd::new("kind").args(["delete", "cluster", "--name", name]).timeout(Duration::from_secs(180)), cancel, "remove the node containers by hand: docker rm -f $(docker ps -aq --filter label=io.x-k8s.kind.cluster=NAME)").map(|_| ())
    }

    fn start(&self, name: &str, cancel: &Cancel) -> Result<()> {
        let nodes = parse_nodes(&self.docker(Self::nodes_cmd(name), cancel, "")?);
        let stopped: Vec<String> = nodes.into_iter().filter(|n| !n.running).map(|n| n.name).collect();
        if stopped.is_empty() {
            return Ok(());
        }
        run(&self.runner, Cmd::new("docker").arg("start").args(stopped).timeout(Duration::from_secs(120)), cancel, &format!("if the nodes do not come back, `devenv up --recreate -n {name}` rebuilds the cluster (its data is lost)")).map(|_| ())
    }

    fn kubeconfig(&self, name: &str, cancel: &Cancel) -> Result<String> {
        let out = run(
            &self.runner,
            Cmd::new("kind")
                .args(["get", "kubeconfig", "--name", name])
                .timeout(QUICK),
            cancel,
            "",
        )?;
        if !out.contains("apiVersion") || !out.contains("clusters") {
            return Err(Error::failed(
                format!("`kind get kubeconfig --name {name}` did not print a kubeconfig"),
                "run it by hand to see what kind says",
            ));
        }
        Ok(out)
    }

    fn context(&self, name: &str) -> String {
        format!("kind-{name}")
    }

    fn load_images(&self, name: &str, images: &[String], cancel: &Cancel) -> Result<()> {
        run(
            &self.runner,
            Cmd::new("kind")
                .args(["load", "docker-image", "--name", name])
                .args(images.iter().cloned())
                .timeout(Duration::from_secs(600)),
            cancel,
            "check that each image exists locally: docker image inspect IMAGE",
        )
        .map(|_| ())
    }
}

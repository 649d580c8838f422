//! The kind cluster provider: the `kind` CLI for the cluster, the container engine for its nodes.

use super::run;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::process::{Cmd, Runner};
use crate::world::{ClusterProvider, ClusterSpec, ClusterState, ContainerEngine};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::world::{CLUSTER_LABEL, ROLE_LABEL};
const QUICK: Duration = Duration::from_secs(30);

pub struct Kind {
    pub runner: Arc<dyn Runner>,
    pub engine: Arc<dyn ContainerEngine>,
    pub transport: Arc<dyn crate::world::ImageTransport>,
    /// Where `kind export logs` puts the logs of a failed create.
    pub logs_dir: PathBuf,
    /// None: kind adds the context to the user's kubeconfig and selects it, as kind always does.
    /// Some(path): kind writes only this file and leaves the user's kubeconfig alone.
    pub kubeconfig: Option<PathBuf>,
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

impl Kind {
    pub fn create_cmd(&self, spec: &ClusterSpec) -> Cmd {
        let mut c = Cmd::new("kind")
            .args([
                "create",
                "cluster",
                "--name",
                &spec.name,
                "--image",
                &spec.node_image,
                "--config",
            ])
            .arg(spec.config_path.display().to_string());
        if let Some(k) = &self.kubeconfig {
            c = c.arg("--kubeconfig").arg(k.display().to_string());
        }
        c.args(["--retain", "--wait", &format!("{}s", spec.wait.as_secs())])
            .timeout(spec.wait + Duration::from_secs(300))
    }
}

impl ClusterProvider for Kind {
    /// The nodes by kind's cluster label, through the engine: kind's own `get clusters` does the same.
    fn observe(&self, name: &str, cancel: &Cancel) -> Result<ClusterState> {
        let nodes = self.engine.containers_labelled(CLUSTER_LABEL, name, cancel)?;
        Ok(if nodes.is_empty() {
            ClusterState::Absent
        } else {
            ClusterState::Present { nodes }
        })
    }

    fn create(&self, spec: &ClusterSpec, cancel: &Cancel) -> Result<()> {
        let Err(e) = self.runner.run(&self.create_cmd(spec), cancel) else {
            return Ok(());
        };
        let interrupted = cancel.is_cancelled();
        // --retain kept the nodes so that their logs can be read; collect them, then delete.
        let logs = self.logs_dir.join(format!("create-{}", std::process::id()));
        let fresh = Cancel::new();
        let export = Cmd::new("kind")
            .args(["export", "logs"])
            .arg(logs.display().to_string())
            .args(["--name", &spec.name])
            .timeout(Duration::from_secs(120));
        let exported = self.runner.run(&export, &fresh).is_ok();
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

    fn delete(&self, name: &str, cancel: &Cancel) -> Result<()> {
        let mut cmd = Cmd::new("kind").args(["delete", "cluster", "--name", name]);
        if let Some(k) = &self.kubeconfig {
            cmd = cmd.arg("--kubeconfig").arg(k.display().to_string());
        }
        let help =
            format!("remove the nodes by hand: docker rm -f $(docker ps -aq --filter label={CLUSTER_LABEL}={name})");
        run(&self.runner, cmd.timeout(Duration::from_secs(180)), cancel, &help).map(|_| ())
    }

    fn start(&self, name: &str, cancel: &Cancel) -> Result<()> {
        let nodes = self.engine.containers_labelled(CLUSTER_LABEL, name, cancel)?;
        let stopped: Vec<String> = nodes.into_iter().filter(|n| !n.running).map(|n| n.name).collect();
        if stopped.is_empty() {
            return Ok(());
        }
        self.engine.start(&stopped, cancel)
    }

    fn stop(&self, name: &str, cancel: &Cancel) -> Result<()> {
        let nodes = self.engine.containers_labelled(CLUSTER_LABEL, name, cancel)?;
        let running: Vec<String> = nodes.into_iter().filter(|n| n.running).map(|n| n.name).collect();
        if running.is_empty() {
            return Ok(());
        }
        self.engine.stop(&running, cancel)
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

    fn list(&self, cancel: &Cancel) -> Result<Vec<String>> {
        let cmd = Cmd::new("kind").args(["get", "clusters"]).timeout(QUICK);
        Ok(parse_clusters(&run(&self.runner, cmd, cancel, "")?))
    }

    /// Through the engine's API, not `kind load`: skips what every node has (by ID), retags,
    /// streams only what is missing, and handles the containerd image store.
    fn load_images(
        &self,
        name: &str,
        images: &[String],
        progress: &(dyn Fn(&str, u64) + Sync),
        cancel: &Cancel,
    ) -> Result<crate::world::LoadReport> {
        let single_platform = self.transport.containerd_store(cancel)?;
        crate::images::load(
            self.engine.as_ref(),
            self.transport.as_ref(),
            name,
            images,
            single_platform,
            progress,
            cancel,
        )
    }
}

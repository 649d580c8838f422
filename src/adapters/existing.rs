//! The existing-cluster provider: a kubeconfig context the user names. devenv never creates or
//! deletes this cluster; `down` removes only what devenv installed in it.

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::process::{Cmd, RunError, Runner};
use crate::world::{ClusterProvider, ClusterSpec, ClusterState, NodeState};
use std::sync::Arc;
use std::time::Duration;

pub struct Existing {
    pub runner: Arc<dyn Runner>,
    pub context: String,
    /// devenv's copy of the context's kubeconfig, written at the start of each command: every
    /// call uses it, so a command never reads one cluster and changes another.
    pub kubeconfig: std::path::PathBuf,
}

/// Nodes from `kubectl get nodes -o json`: name, role, Ready.
pub fn parse_nodes(stdout: &str) -> Result<Vec<NodeState>> {
    let v: serde_json::Value = serde_json::from_str(stdout).map_err(|e| {
        Error::failed(
            format!("`kubectl get nodes -o json` printed something that is not JSON: {e}"),
            "",
        )
    })?;
    let items = v.get("items").and_then(|i| i.as_array()).cloned().unwrap_or_default();
    Ok(items
        .iter()
        .map(|n| {
            let name = n
                .pointer("/metadata/name")
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string();
            let labels = n.pointer("/metadata/labels").and_then(|l| l.as_object());
            let control = labels.is_some_and(|l| l.contains_key("node-role.kubernetes.io/control-plane"));
            let ready = n
                .pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            NodeState {
                name,
                role: if control {
                    "control-plane".into()
                } else {
                    "worker".into()
                },
                running: ready,
            }
        })
        .collect())
}

impl ClusterProvider for Existing {
    fn observe(&self, _name: &str, cancel: &Cancel) -> Result<ClusterState> {
        let cmd = Cmd::new("kubectl")
            .args(["--kubeconfig".to_string(), self.kubeconfig.display().to_string()])
            .args(["--context", &self.context, "get", "nodes", "--output", "json"])
            .timeout(Duration::from_secs(30));
        match self.runner.run(&cmd, cancel) {
            Ok(o) => Ok(ClusterState::Present {
                nodes: parse_nodes(&o.stdout)?,
            }),
            Err(RunError::Failed { stderr, .. })
                if stderr.contains("does not exist") || stderr.contains("context was not found") =>
            {
                Err(Error::usage(
                    format!("kube context `{}` is not in your kubeconfig", self.context),
                    "list the contexts with `kubectl config get-contexts` and pass one with --context",
                ))
            }
            Err(RunError::Failed { command, stderr, .. }) => Err(Error::prerequisite(
                format!(
                    "the cluster behind context `{}` does not answer (`{command}`):\n{}",
                    self.context,
                    crate::process::tail(&stderr, 6)
                ),
                "start it, or check the context with `kubectl --context CONTEXT cluster-info`",
            )),
            Err(e) => Err(e.into_error(cancel, "")),
        }
    }

    fn create(&self, _spec: &ClusterSpec, _cancel: &Cancel) -> Result<()> {
        Err(Error::usage(
            format!(
                "the existing driver never creates a cluster, and context `{}` has none",
                self.context
            ),
            "use --driver kind to let devenv create one",
        ))
    }

    fn delete(&self, _name: &str, _cancel: &Cancel) -> Result<()> {
        Err(Error::usage(
            "devenv never deletes a cluster it did not create",
            "`devenv down` removes only what devenv installed in it",
        ))
    }

    fn start(&self, _name: &str, _cancel: &Cancel) -> Result<()> {
        Err(Error::prerequisite(
            format!("nodes behind context `{}` are not ready", self.context),
            "start them with the tool that manages that cluster",
        ))
    }

    fn stop(&self, _name: &str, _cancel: &Cancel) -> Result<()> {
        Err(Error::usage(
            format!(
                "devenv does not stop the cluster behind context `{}`: it did not create it",
                self.context
            ),
            "stop it with the tool that manages that cluster",
        ))
    }

    fn kubeconfig(&self, _name: &str, cancel: &Cancel) -> Result<String> {
        super::kubectl::view_context(&self.runner, &self.context, cancel)
    }

    fn context(&self, _name: &str) -> String {
        self.context.clone()
    }

    fn list(&self, _cancel: &Cancel) -> Result<Vec<String>> {
        Ok(vec![self.context.clone()])
    }

    fn load_images(
        &self,
        _name: &str,
        _images: &[String],
        _progress: &(dyn Fn(&str, u64) + Sync),
        _cancel: &Cancel,
    ) -> Result<crate::world::LoadReport> {
        Err(Error::usage(
            "devenv cannot load local images into an existing cluster",
            "push them to a registry the cluster pulls from, and remove `images:` from devenv.yaml",
        ))
    }
}

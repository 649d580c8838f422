//! devenv's record of what it applied, kept in the cluster as one ConfigMap per environment in
//! kube-system. Each key is written by server-side apply with its own field manager, so steps that
//! run at once never overwrite each other's keys and a key can be removed on its own.

use super::run;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::process::{Cmd, Runner};
use crate::world::{Applied, Kube, KubeTarget};
use std::sync::Arc;
use std::time::Duration;

pub struct Kubectl {
    pub runner: Arc<dyn Runner>,
}

pub const NAMESPACE: &str = "kube-system";

pub fn configmap_name(env: &str) -> String {
    format!("devenv-{env}")
}

pub fn parse_applied(stdout: &str) -> Result<Option<Applied>> {
    if stdout.trim().is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(stdout)
        .map_err(|e| Error::failed(format!("kubectl printed a ConfigMap that is not JSON: {e}"), ""))?;
    let entries = v
        .get("data")
        .and_then(|d| d.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Applied { entries }))
}

/// `serverVersion.gitVersion` from `kubectl version -o json`.
pub fn parse_server_version(stdout: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(stdout).map_err(|e| {
        Error::failed(
            format!("`kubectl version -o json` printed something that is not JSON: {e}"),
            "",
        )
    })?;
    v.pointer("/serverVersion/gitVersion")
        .and_then(|g| g.as_str())
        .map(String::from)
        .ok_or_else(|| {
            Error::failed(
                "`kubectl version -o json` has no serverVersion: the cluster did not answer",
                "is the cluster running? `devenv status`",
            )
        })
}

impl Kubectl {
    fn base(t: &KubeTarget) -> Cmd {
        Cmd::new("kubectl").args([
            "--kubeconfig".to_string(),
            t.kubeconfig.display().to_string(),
            "--context".to_string(),
            t.context.clone(),
        ])
    }

    pub fn apply_cmd(t: &KubeTarget, env: &str, key: &str, value: Option<&str>) -> Cmd {
        let mut cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": configmap_name(env),
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "devenv", "devenv.dev/environment": env},
            },
        });
        if let Some(v) = value {
            cm["data"] = serde_json::json!({ key: v });
        }
        Self::base(t)
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                &format!("devenv-{key}"),
                "-f",
                "-",
            ])
            .stdin(cm.to_string().into_bytes())
            .timeout(Duration::from_secs(60))
    }
}

impl Kube for Kubectl {
    fn get_applied(&self, t: &KubeTarget, env: &str, cancel: &Cancel) -> Result<Option<Applied>> {
        let cmd = Self::base(t)
            .args([
                "get",
                "configmap",
                &configmap_name(env),
                "--namespace",
                NAMESPACE,
                "--output",
                "json",
                "--ignore-not-found",
            ])
            .timeout(Duration::from_secs(30));
        parse_applied(&run(
            &self.runner,
            cmd,
            cancel,
            "is the cluster reachable? `devenv status` says",
        )?)
    }

    fn server_version(&self, t: &KubeTarget, cancel: &Cancel) -> Result<String> {
        let cmd = Self::base(t)
            .args(["version", "--output", "json"])
            .timeout(Duration::from_secs(30));
        parse_server_version(&run(&self.runner, cmd, cancel, "is the cluster reachable?")?)
    }

    fn wait_nodes_ready(&self, t: &KubeTarget, timeout: Duration, cancel: &Cancel) -> Result<()> {
        let cmd = Self::base(t)
            .args([
                "wait",
                "--for=condition=Ready",
                "nodes",
                "--all",
                &format!("--timeout={}s", timeout.as_secs()),
            ])
            .timeout(timeout + Duration::from_secs(30));
        let help = "the nodes did not become Ready: `kubectl describe nodes` (with devenv's kubeconfig) says why; `devenv doctor` checks disk, memory and inotify limits";
        run(&self.runner, cmd, cancel, help).map(|_| ())
    }

    fn delete_applied(&self, t: &KubeTarget, env: &str, cancel: &Cancel) -> Result<()> {
        let cmd = Self::base(t)
            .args([
                "delete",
                "configmap",
                &configmap_name(env),
                "--namespace",
                NAMESPACE,
                "--ignore-not-found",
            ])
            .timeout(Duration::from_secs(60));
        run(&self.runner, cmd, cancel, "").map(|_| ())
    }

    fn set_applied(&self, t: &KubeTarget, env: &str, key: &str, value: Option<&str>, cancel: &Cancel) -> Result<()> {
        run(&self.runner, Self::apply_cmd(t, env, key, value), cancel, "").map(|_| ())
    }
}

/// One context's kubeconfig, with credentials inlined: `kubectl config view --minify --flatten`.
pub fn view_context(runner: &Arc<dyn Runner>, context: &str, cancel: &Cancel) -> Result<String> {
    let cmd = Cmd::new("kubectl")
        .args(["config", "view", "--minify", "--flatten", "--context", context])
        .timeout(Duration::from_secs(30));
    let out = run(
        runner,
        cmd,
        cancel,
        "list the contexts with `kubectl config get-contexts`",
    )?;
    if !out.contains("clusters:") {
        return Err(Error::failed(
            format!("`kubectl config view` printed no cluster for context `{context}`"),
            "check it with `kubectl config get-contexts`",
        ));
    }
    Ok(out)
}

//! `devenv status`: cluster, nodes and components; exit 0 only when all is healthy.

use super::App;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::world::ClusterState;

pub fn run(app: &App) -> Result<()> {
    let ctx = Context::new(app, None)?;
    let (state, desired, world) = (&ctx.state, &ctx.desired, &ctx.world);
    let o = ctx.observe(true)?;
    let mut problems = Vec::new();
    let mut text = format!("environment: {} ({})\n", desired.name, desired.driver.as_str());
    let mut nodes_json = Vec::new();
    let mut version: Option<String> = None;
    match &o.cluster {
        ClusterState::Absent => {
            text.push_str("cluster:     absent\n");
            problems.push("the cluster does not exist".to_string());
        }
        ClusterState::Present { nodes } => {
            let applied = o.applied.clone().unwrap_or_default();
            let matches = applied.entries.get("cluster") == Some(&desired.cluster_digest);
            text.push_str(&format!(
                "cluster:     present{}\n",
                if matches {
                    ""
                } else {
                    " (built from a different configuration; `devenv up --recreate` rebuilds it)"
                }
            ));
            if !state.kubeconfig().is_file() {
                problems.push("devenv's kubeconfig for it is missing; `devenv up` writes it again".to_string());
            } else if o.cluster.stopped_nodes().is_empty() {
                match world.kube.server_version(&ctx.target, &app.cancel) {
                    Ok(v) => {
                        text.push_str(&format!("kubernetes:  {v}\n"));
                        version = Some(v);
                    }
                    Err(e) => problems.push(format!("the API server does not answer: {e}")),
                }
            }
            for n in nodes {
                text.push_str(&format!(
                    "  node {:<32} {:<14} {}\n",
                    n.name,
                    n.role,
                    if n.running { "running" } else { "exited" }
                ));
                nodes_json.push(serde_json::json!({"name": n.name, "role": n.role, "running": n.running}));
                if !n.running {
                    problems.push(format!("node {} has exited", n.name));
                }
            }
        }
    }
    let mut comps = Vec::new();
    if !matches!(o.cluster, ClusterState::Absent) {
        text.push_str("components:\n");
        let applied = o.applied.clone().unwrap_or_default();
        for c in &desired.components {
            let rel = o
                .releases
                .iter()
                .find(|r| r.name == c.name && r.namespace == c.namespace);
            let status = rel.map(|r| r.status.as_str()).unwrap_or("not installed");
            let current = applied.entries.get(&format!("component.{}", c.name)) == Some(&c.digest);
            let endpoint = c.endpoint.clone().unwrap_or_default();
            let chart = rel.map(|r| r.chart.clone()).unwrap_or_else(|| "-".into());
            text.push_str(&format!(
                "  {:<16} {:<30} {:<16} {:<10} {}\n",
                c.name,
                chart,
                status,
                if current { "current" } else { "outdated" },
                endpoint
            ));
            if status != "deployed" {
                problems.push(format!("{} is {status}", c.name));
            } else if !current {
                problems.push(format!("{} differs from the configuration", c.name));
            }
            comps.push(serde_json::json!({"name": c.name, "namespace": c.namespace, "chart": chart, "status": status, "current": current, "endpoint": endpoint}));
        }
        if let Some(sh) = &desired.shared {
            let rec = applied.entries.get("volume.shared-data");
            let status = if rec.is_some() { "present" } else { "absent" };
            let current = sh.is_current(rec.map(String::as_str));
            let dir = state.host_dir(&sh.volume.host_dir);
            let claim = format!("{}/{}", sh.volume.namespace, sh.volume.claim);
            text.push_str(&format!(
                "  {:<16} {:<30} {:<16} {:<10} {}\n",
                "shared-data",
                claim,
                status,
                if current { "current" } else { "outdated" },
                dir.display()
            ));
            if !current {
                problems.push(format!(
                    "the shared-data claim {claim} is {}",
                    if rec.is_some() { "outdated" } else { "missing" }
                ));
            }
            comps.push(serde_json::json!({"name": "shared-data", "namespace": sh.volume.namespace, "claim": sh.volume.claim, "status": status, "current": current, "directory": dir}));
        }
    }
    app.reporter.data(&text);
    app.reporter.json(serde_json::json!({"event": "status", "environment": desired.name, "driver": desired.driver.as_str(),
        "cluster": if matches!(o.cluster, ClusterState::Absent) {"absent"} else {"present"}, "nodes": nodes_json, "kubernetes": version, "components": comps, "healthy": problems.is_empty(), "problems": problems}));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(
            format!("environment `{}` is not healthy: {}", desired.name, problems.join("; ")),
            "run `devenv up` to converge it",
        ))
    }
}

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
            let stopped = !o.cluster.stopped_nodes().is_empty();
            // Only a running cluster's record can be read: a stopped one is not "different".
            let (word, problem) = if o.half_made {
                (
                    "half-made (node containers without a working cluster: a create that did not finish; `devenv up` removes them and creates it again)",
                    Some("the cluster is half-made".to_string()),
                )
            } else if stopped {
                (
                    "stopped (`devenv start` or `devenv up` starts it again; everything in it is kept)",
                    Some(format!(
                        "the cluster is stopped: node {} has exited",
                        o.cluster.stopped_nodes().join(", node ")
                    )),
                )
            } else if matches {
                ("present", None)
            } else if o.applied.is_none() {
                ("present (devenv has no record of how it was built)", None)
            } else {
                (
                    "present (built from a different configuration; `devenv up --recreate` rebuilds it)",
                    None,
                )
            };
            text.push_str(&format!("cluster:     {word}\n"));
            problems.extend(problem);
            if o.half_made || stopped {
                // Nothing more to read in it.
            } else if !state.kubeconfig().is_file() {
                problems.push("devenv's kubeconfig for it is missing; `devenv up` writes it again".to_string());
            } else if o.cluster.stopped_nodes().is_empty() {
                match world.kube.server_version(&ctx.target, &app.cancel) {
                    Ok(v) => {
                        text.push_str(&format!("kubernetes:  {v}\n"));
                        let kubectl = ctx
                            .tools
                            .iter()
                            .find(|f| f.check == "tool kubectl")
                            .and_then(|f| f.version);
                        if let Some(w) = kubectl.and_then(|k| crate::doctor::kubectl_skew(k, &v)) {
                            app.reporter
                                .warn(&format!("{}; {}", w.message, w.help.unwrap_or_default()));
                        }
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
            }
        }
    }
    let failures = state.failures();
    let mut comps = Vec::new();
    let mut smoke = serde_json::Value::Null;
    let readable = !matches!(o.cluster, ClusterState::Absent) && !o.half_made && o.cluster.stopped_nodes().is_empty();
    if readable {
        text.push_str("components:\n");
        let applied = o.applied.clone().unwrap_or_default();
        for c in &desired.components {
            let rel = o
                .releases
                .iter()
                .find(|r| r.name == c.name && r.namespace == c.namespace);
            let status = rel.map(|r| r.status.as_str()).unwrap_or("not installed");
            let recorded = applied.entries.get(&format!("component.{}", c.name));
            let current = recorded == Some(&c.digest);
            // What devenv's record says of it: the configuration it last finished installing.
            let record = match recorded.map(String::as_str) {
                _ if current => "current",
                None => "not recorded",
                Some(crate::plan::INSTALLING) => "unfinished",
                Some(_) => "outdated",
            };
            let endpoint = c.endpoint.clone().unwrap_or_default();
            let chart = rel.map(|r| r.chart.clone()).unwrap_or_else(|| "-".into());
            text.push_str(&format!(
                "  {:<16} {:<30} {:<16} {:<12} {}\n",
                c.name, chart, status, record, endpoint
            ));
            let why = failures
                .get(&c.name)
                .map(|f| format!(" (last `{}`: {})", f.command, first_line(&f.message)))
                .unwrap_or_default();
            if status != "deployed" {
                problems.push(format!("{} is {status}{why}", c.name));
            } else if !current {
                problems.push(match record {
                    "outdated" => format!("{} differs from the configuration{why}", c.name),
                    _ => format!("{} was not seen ready by devenv since it was installed{why}", c.name),
                });
            }
            comps.push(serde_json::json!({"name": c.name, "namespace": c.namespace, "chart": chart, "status": status, "current": current, "record": record, "endpoint": endpoint, "last_failure": failures.get(&c.name)}));
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
    if readable {
        let applied = o.applied.clone().unwrap_or_default();
        let passed = applied.entries.get(&crate::plan::RecordKey::Smoke.key()) == Some(&desired.smoke_digest);
        let (word, failure) = match failures.get("smoke") {
            Some(f) => ("failed", Some(f)),
            None if passed => ("passed", None),
            None => ("not run since the last change (`devenv test` runs it)", None),
        };
        text.push_str(&format!("smoke tests: {word}\n"));
        if let Some(f) = failure {
            problems.push(format!(
                "the last smoke run (`devenv {}`) failed: {}",
                f.command,
                first_line(&f.message)
            ));
        }
        smoke = serde_json::json!({"result": word.split(' ').next(), "last_failure": failure});
        // Failures of steps that are not rows above (the cluster, images, the shared volume).
        for (id, f) in &failures {
            if id != "smoke" && !desired.components.iter().any(|c| &c.name == id) {
                problems.push(format!(
                    "{id}: the last `{}` failed: {}",
                    f.command,
                    first_line(&f.message)
                ));
            }
        }
        if !failures.is_empty() {
            text.push_str("last failures:\n");
            for (id, f) in &failures {
                text.push_str(&format!(
                    "  {id} (`devenv {}`, {}): {}\n",
                    f.command,
                    ago(f.at),
                    crate::output::sanitize(&f.message).replace('\n', "\n    ")
                ));
                if !f.help.is_empty() {
                    text.push_str(&format!("    help: {}\n", crate::output::sanitize(&f.help)));
                }
            }
        }
    }
    let cached = &desired.cached_images;
    let here = cached
        .iter()
        .filter(|i| world.images.local_image(i, &app.cancel).ok().flatten().is_some())
        .count();
    if !cached.is_empty() {
        text.push_str(&format!(
            "image cache: {here} of {} pinned image(s) on this machine{}\n",
            cached.len(),
            if here < cached.len() {
                " (`devenv up` pulls the rest once)"
            } else {
                ""
            }
        ));
    }
    app.reporter.data(&text);
    app.reporter.json(serde_json::json!({"event": "status", "image_cache": {"pinned": cached.len(), "on_this_machine": here}, "environment": desired.name, "driver": desired.driver.as_str(),
        "cluster": if matches!(o.cluster, ClusterState::Absent) {"absent"} else if o.half_made {"half-made"} else if !o.cluster.stopped_nodes().is_empty() {"stopped"} else {"present"}, "nodes": nodes_json, "kubernetes": version, "components": comps, "smoke": smoke, "healthy": problems.is_empty(), "problems": problems}));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(
            format!("environment `{}` is not healthy: {}", desired.name, problems.join("; ")),
            "run `devenv up` to converge it",
        ))
    }
}

/// A message on one line (a smoke failure lists its checks on lines of their own), cut short.
fn first_line(m: &str) -> String {
    let one: Vec<&str> = m.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let one = crate::output::sanitize(&one.join(" "));
    match one.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// `3 min ago`, from seconds since the epoch.
fn ago(at: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    match now.saturating_sub(at) {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

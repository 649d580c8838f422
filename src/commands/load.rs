//! `devenv load IMAGE…`: local images into every node, skipping what is there.

use super::App;
use crate::error::{Error, Result};
use crate::world::ClusterState;

pub fn run(app: &App, images: &[String], no_wait: bool) -> Result<()> {
    let config = app.config()?;
    for img in images {
        crate::config::names::pinned_image(img)
            .map_err(|m| Error::usage(m, "name the image with its tag, e.g. myapp:dev"))?;
    }
    let state = app.state(&config);
    let (world, _) = app.world(&config, &state)?;
    let _lock = state.lock(no_wait, &app.cancel, |m| app.reporter.info(m))?;
    let name = &config.project.name;
    match world.cluster.observe(name, &app.cancel)? {
        ClusterState::Absent => {
            return Err(Error::failed(
                format!("environment `{name}` has no cluster"),
                "run `devenv up` first",
            ));
        }
        s if !s.stopped_nodes().is_empty() => {
            return Err(Error::failed(
                format!("node(s) {} are not running", s.stopped_nodes().join(", ")),
                "`devenv up` starts them",
            ));
        }
        _ => {}
    }
    let t = std::time::Instant::now();
    let report = world.cluster.load_images(
        name,
        images,
        &|node, bytes| {
            app.reporter
                .progress(&format!("load:{node}"), format!("{node}: {bytes} bytes"), false)
        },
        &app.cancel,
    );
    if let Ok(r) = &report {
        for (_, outcome) in &r.images {
            if let crate::world::LoadOutcome::Loaded { nodes, .. } = outcome {
                for n in nodes {
                    app.reporter.progress(&format!("load:{n}"), String::new(), true);
                }
            }
        }
    }
    let report = report?;
    for line in report.lines() {
        app.reporter.info(&line);
    }
    for (image, outcome) in &report.images {
        let v = match outcome {
            crate::world::LoadOutcome::AlreadyOnAll { nodes } => {
                serde_json::json!({"event": "image", "image": image, "result": "already-present", "nodes": nodes})
            }
            crate::world::LoadOutcome::Loaded { nodes, retagged, bytes } => {
                serde_json::json!({"event": "image", "image": image, "result": "loaded", "nodes": nodes, "retagged": retagged, "bytes": bytes})
            }
        };
        app.reporter.json(v);
    }
    app.reporter.json(serde_json::json!({"event": "summary", "command": "load", "bytes": report.bytes, "elapsed_ms": t.elapsed().as_millis() as u64}));
    Ok(())
}

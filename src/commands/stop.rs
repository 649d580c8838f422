//! `devenv stop`: stop the cluster's nodes and keep everything in them; `devenv start` (or `up`)
//! brings them back.

use super::App;
use crate::error::{Error, Result};
use crate::world::ClusterState;

pub fn run(app: &App, no_wait: bool) -> Result<()> {
    let ctx = crate::context::Context::new(app, None)?;
    if ctx.config.project.driver == crate::config::Driver::Existing {
        return Err(Error::usage(
            "devenv does not stop an existing cluster: it did not create it",
            "stop it with the tool that manages it; `devenv down` removes what devenv installed",
        ));
    }
    let _lock = ctx.state.lock(no_wait, &app.cancel, |m| app.reporter.info(m))?;
    let name = ctx.name();
    let result = match ctx.world.cluster.observe(name, &app.cancel)? {
        ClusterState::Absent => {
            app.reporter
                .info(&format!("environment `{name}` has no cluster: nothing to stop"));
            "unchanged"
        }
        ClusterState::Present { nodes } if nodes.iter().all(|n| !n.running) => {
            app.reporter.info(&format!("cluster `{name}` is already stopped"));
            "unchanged"
        }
        ClusterState::Present { .. } => {
            let label = format!("stop cluster {name} (everything in it is kept)");
            app.reporter.step_started("cluster", &label);
            let t = std::time::Instant::now();
            let r = ctx.world.cluster.stop(name, &app.cancel);
            app.reporter.step_finished(&crate::exec::StepResult {
                id: "cluster".into(),
                label,
                status: match &r {
                    Ok(()) => crate::exec::Status::Ok,
                    Err(e) => crate::exec::Status::Failed(e.to_string()),
                },
                span: Some((std::time::Duration::ZERO, t.elapsed())),
            });
            r?;
            app.reporter.info(&format!(
                "cluster `{name}` is stopped; `devenv start` (or `devenv up`) starts it again"
            ));
            "stopped"
        }
    };
    app.reporter
        .json(serde_json::json!({"event": "summary", "command": "stop", "result": result}));
    Ok(())
}

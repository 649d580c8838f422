//! `devenv down`: remove the environment. Idempotent.

use super::App;
use crate::error::Result;
use crate::plan::{Desired, Selection};
use crate::world::ClusterState;

pub fn run(app: &App, purge: bool, no_wait: bool) -> Result<()> {
    let config = app.config()?;
    let desired = Desired::from_config(&config, &Selection::default())?;
    let state = app.state(&config);
    let world = app.world(&config, &state)?;
    let lock = state.lock(no_wait, &app.cancel, |m| app.reporter.info(m))?;
    let name = &desired.name;
    let removed = match world.cluster.observe(name, &app.cancel)? {
        ClusterState::Absent => {
            app.reporter
                .info(&format!("environment `{name}` has no cluster: nothing to do"));
            false
        }
        ClusterState::Present { .. } => {
            app.reporter.step_started("cluster", &format!("delete cluster {name}"));
            let t = std::time::Instant::now();
            let r = world.cluster.delete(name, &app.cancel);
            let result = crate::exec::StepResult {
                id: "cluster".into(),
                label: format!("delete cluster {name}"),
                status: match &r {
                    Ok(()) => crate::exec::Status::Ok,
                    Err(e) => crate::exec::Status::Failed(e.to_string()),
                },
                span: Some((std::time::Duration::ZERO, t.elapsed())),
            };
            app.reporter.step_finished(&result);
            r?;
            true
        }
    };
    let _ = std::fs::remove_file(state.kubeconfig());
    drop(lock);
    if purge && state.dir.exists() {
        std::fs::remove_dir_all(&state.dir)
            .map_err(|e| crate::error::Error::failed(format!("cannot remove {}: {e}", state.dir.display()), ""))?;
        app.reporter.info(&format!(
            "removed devenv's state for `{name}` ({})",
            state.dir.display()
        ));
    }
    app.reporter.json(
        serde_json::json!({"event": "summary", "command": "down", "result": if removed {"removed"} else {"unchanged"}}),
    );
    Ok(())
}

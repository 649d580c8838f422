//! `devenv test`: the smoke tests, against the environment as it runs now.

use super::{App, target};
use crate::error::{Error, Result};
use crate::exec::{self, Event, StepCtx, Task};
use crate::plan::Desired;
use crate::world::ClusterState;

pub fn run(app: &App, junit: Option<&std::path::Path>) -> Result<()> {
    let config = app.config()?;
    let state = app.state(&config);
    let desired = Desired::from_config(&config, &super::plan::selection(&state, None)?)?;
    let world = app.world(&config, &state)?;
    if matches!(world.cluster.observe(&desired.name, &app.cancel)?, ClusterState::Absent) {
        return Err(Error::failed(
            format!("environment `{}` is not up", desired.name),
            "run `devenv up` first",
        ));
    }
    let t = target(&world, &state, &desired.name);
    let timeout = config.project.timeouts.test;
    let task = Task::new("smoke", "smoke tests", vec![], |ctx: &StepCtx| {
        let smoke = super::smoke::Smoke {
            skip_shared: false,
            world: &world,
            state: &state,
            desired: &desired,
            target: &t,
            timeout,
        };
        super::smoke::run(&smoke, ctx, &app.reporter, junit)?;
        world
            .kube
            .set_applied(&t, &desired.name, "smoke", Some(&desired.smoke_digest), ctx.cancel)
    });
    let outcome = exec::execute(vec![task], &app.cancel, &app.ledger, &|e| match e {
        Event::Started { id, label } => app.reporter.step_started(id, label),
        Event::Finished { result } => app.reporter.step_finished(result),
        Event::Undone(u) => app.reporter.undone(u),
    });
    outcome.error.map_or(Ok(()), Err)
}

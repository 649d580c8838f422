//! `devenv test`: the smoke tests, against the environment as it runs now.

use super::App;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::exec::{self, Event, StepCtx, Task};
use crate::steps::smoke;

pub fn run(app: &App, junit: Option<&std::path::Path>) -> Result<()> {
    let ctx = Context::new(app, None)?;
    if !ctx.cluster_exists()? {
        return Err(Error::failed(
            format!("environment `{}` is not up", ctx.name()),
            "run `devenv up` first",
        ));
    }
    let timeout = ctx.config.project.timeouts.test;
    let task = Task::new("smoke", "smoke tests", vec![], |sc: &StepCtx| {
        smoke::run_and_record(&smoke::Smoke::of(&ctx, timeout, false), sc, &app.reporter, junit)
    });
    let outcome = exec::execute(
        vec![task],
        exec::OnFailure::CancelSiblings,
        &app.cancel,
        &app.ledger,
        &|e| match e {
            Event::Started { id, label } => app.reporter.step_started(id, label),
            Event::Finished { result } => app.reporter.step_finished(result),
            Event::Undone(u) => app.reporter.undone(u),
        },
    );
    let failure = match outcome.results.first().map(|r| &r.status) {
        Some(exec::Status::Ok) => None,
        Some(exec::Status::Failed(_)) => outcome.error.as_ref().map(|e| crate::state::Failure::now("test", e)),
        _ => return outcome.error.map_or(Ok(()), Err),
    };
    if let Err(e) = ctx.state.update_failures([("smoke".to_string(), failure)]) {
        app.reporter.warn(&format!(
            "could not keep the record of failures for `devenv status`: {e}"
        ));
    }
    outcome.error.map_or(Ok(()), Err)
}

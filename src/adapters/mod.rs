//! Real adapters: they build command lines and parse output, and hold no policy.

pub mod docker;
pub mod existing;
pub mod helm;
pub mod host;
pub mod image_api;
pub mod kind;
pub mod kube;
pub mod kubectl;
pub mod minikube;
pub mod probe;

use crate::error::Result;
use crate::exec::Cancel;
use crate::process::{Cmd, Runner};
use std::sync::Arc;

/// Runs `cmd` and returns its stdout, turning a failure into devenv's error with `help`.
pub(crate) fn run(runner: &Arc<dyn Runner>, cmd: Cmd, cancel: &Cancel, help: &str) -> Result<String> {
    runner
        .run(&cmd, cancel)
        .map(|o| o.stdout)
        .map_err(|e| e.into_error(cancel, help))
}

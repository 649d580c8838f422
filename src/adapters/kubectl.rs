//! kubectl, for what only the kubeconfig tooling does well: one context's kubeconfig with its
//! credentials inlined. Everything else goes through the API (adapters/kubeapi.rs).

use super::run;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::process::{Cmd, Runner};
use std::sync::Arc;
use std::time::Duration;

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

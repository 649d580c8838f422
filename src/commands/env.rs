//! `devenv env`: the variables a program needs to reach the environment. The one place devenv
//! prints the generated database password, because it was asked to.

use super::App;
pub use crate::cli::Format;
use crate::components::Part;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// KUBECONFIG, DATABASE_URL, REDIS_URL and INGRESS_URL for the environment.
pub fn variables(app: &App) -> Result<BTreeMap<String, String>> {
    let crate::context::Base { state, desired, .. } = crate::context::Base::new(app, None)?;
    if !state.kubeconfig().is_file() {
        return Err(Error::failed(
            format!(
                "environment `{}` is not up (devenv has no kubeconfig for it)",
                desired.name
            ),
            "run `devenv up` first",
        ));
    }
    let mut vars = BTreeMap::new();
    vars.insert("KUBECONFIG".to_string(), state.kubeconfig().display().to_string());
    let mut credentials = None;
    let failures = state.failures();
    for c in &desired.components {
        // A component whose last install failed has nothing to reach: its variables would lie.
        if let Some(f) = failures.get(&c.name)
            && !c.env.is_empty()
        {
            let names: Vec<&str> = c.env.iter().map(|v| v.name).collect();
            app.reporter.warn(&format!(
                "{} left out: {}'s last `devenv {}` failed ({}); `devenv status` says more, `devenv up` tries again",
                names.join(", "),
                c.name,
                f.command,
                f.message.lines().next().unwrap_or_default()
            ));
            continue;
        }
        for var in &c.env {
            let mut value = String::new();
            for part in &var.value {
                match part {
                    Part::Text(t) => value.push_str(t),
                    Part::Secret(s) => {
                        if credentials.is_none() {
                            credentials = Some(state.credentials()?);
                        }
                        value.push_str(credentials.as_ref().expect("read above").secret(*s));
                    }
                }
            }
            vars.insert(var.name.to_string(), value);
        }
    }
    Ok(vars)
}

fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

pub fn render(vars: &BTreeMap<String, String>, format: Format) -> String {
    match format {
        Format::Json => format!("{}\n", serde_json::to_string(vars).unwrap_or_default()),
        _ => vars
            .iter()
            .map(|(k, v)| match format {
                Format::Sh => format!("export {k}={}\n", sh_quote(v)),
                Format::Fish => format!("set -gx {k} {};\n", sh_quote(v)),
                // Single-quoted as for sh: a sourced .env runs nothing ($(…), backticks, $VAR).
                _ => format!("{k}={}\n", sh_quote(v)),
            })
            .collect(),
    }
}

pub fn run(app: &App, format: Format) -> Result<()> {
    let vars = variables(app)?;
    // `-o json` and `--format json` both give one JSON object on stdout.
    if app.reporter.mode == crate::output::Mode::Json {
        app.reporter
            .json(serde_json::json!({"event": "env", "variables": vars}));
    } else {
        app.reporter.data(&render(&vars, format));
    }
    Ok(())
}

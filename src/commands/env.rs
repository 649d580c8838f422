//! `devenv env`: the variables a program needs to reach the environment. The one place devenv
//! prints the generated database password, because it was asked to.

use super::App;
use crate::error::{Error, Result};
use crate::plan::Desired;
use crate::world::Check;
use clap::ValueEnum;
use std::collections::BTreeMap;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sh,
    Fish,
    Dotenv,
    Json,
}

/// KUBECONFIG, DATABASE_URL, REDIS_URL and INGRESS_URL for the environment.
pub fn variables(app: &App) -> Result<BTreeMap<String, String>> {
    let config = app.config()?;
    let state = app.state(&config);
    let desired = Desired::from_config(&config, &super::plan::selection(&state, None)?)?;
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
    for p in &desired.probes {
        match &p.check {
            Check::Postgres { user, database } => {
                let pw = state.credentials()?.postgres_password;
                vars.insert(
                    "DATABASE_URL".into(),
                    format!("postgres://{user}:{pw}@{}:{}/{database}", p.host, p.port),
                );
            }
            Check::Redis => {
                vars.insert("REDIS_URL".into(), format!("redis://{}:{}/0", p.host, p.port));
            }
            Check::Http { .. } => {
                let port = if p.port == 80 {
                    String::new()
                } else {
                    format!(":{}", p.port)
                };
                vars.insert("INGRESS_URL".into(), format!("http://{}{port}", p.host));
            }
            Check::Prometheus { host_header } => {
                vars.insert(
                    "PROMETHEUS_URL".into(),
                    format!("http://{host_header}{}", port_suffix(p.port)),
                );
            }
            Check::Grafana { host_header } => {
                vars.insert(
                    "GRAFANA_URL".into(),
                    format!("http://{host_header}{}", port_suffix(p.port)),
                );
            }
        }
    }
    // Also without an ingress to reach Grafana through: a port-forward needs the login too.
    if desired.components.iter().any(|c| c.name == "monitoring") {
        vars.insert("GRAFANA_USER".into(), "admin".into());
        vars.insert("GRAFANA_PASSWORD".into(), state.credentials()?.grafana_password);
    }
    Ok(vars)
}

fn port_suffix(port: u16) -> String {
    if port == 80 { String::new() } else { format!(":{port}") }
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
                _ => format!("{k}=\"{}\"\n", v.replace('\\', "\\\\").replace('"', "\\\"")),
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

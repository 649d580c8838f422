//! `devenv version`: devenv's own version, and the tools it drives as found on this machine.

use super::App;
use crate::error::Result;

pub fn run(app: &App) -> Result<()> {
    let mut text = format!("devenv {}\n", env!("CARGO_PKG_VERSION"));
    let mut tools = serde_json::Map::new();
    // The tools of the configured driver, found as every command finds them (PATH, then
    // devenv's own bin dir); a directory without a configuration takes the defaults.
    if let Ok(config) = app.config() {
        let state = app.state(&config);
        if let Ok((_, found)) = app.world(&config, &state) {
            for f in found.iter().filter(|f| f.check.starts_with("tool ")) {
                let tool = f.check.trim_start_matches("tool ");
                let v = f.version.map(|v| v.to_string());
                text.push_str(&format!(
                    "{tool:<9} {}\n",
                    v.clone().unwrap_or_else(|| f.message.clone())
                ));
                tools.insert(tool.into(), v.map(Into::into).unwrap_or(serde_json::Value::Null));
            }
        }
    }
    app.reporter.data(&text);
    app.reporter
        .json(serde_json::json!({"event": "version", "devenv": env!("CARGO_PKG_VERSION"), "tools": tools}));
    Ok(())
}

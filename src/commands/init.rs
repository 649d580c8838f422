//! `devenv init`: write the default config files out for editing.

use super::App;
use crate::error::{Error, Result};
use std::os::unix::fs::PermissionsExt;

pub fn run(app: &App, force: bool) -> Result<()> {
    let dir = app.cwd.join(app.global.dir.clone().unwrap_or_else(|| ".".into()));
    let existing: Vec<&str> = crate::config::DEFAULTS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| dir.join(n).exists())
        .collect();
    if !existing.is_empty() && !force {
        return Err(Error::usage(
            format!(
                "{} already exist(s) in {}; nothing was written",
                existing.join(", "),
                dir.display()
            ),
            "run `devenv init --force` to overwrite them with the defaults",
        ));
    }
    for (name, text) in crate::config::DEFAULTS {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::failed(format!("cannot create {}: {e}", parent.display()), ""))?;
        }
        std::fs::write(&path, text).map_err(|e| {
            Error::failed(
                format!("cannot write {}: {e}", path.display()),
                "check the directory's permissions",
            )
        })?;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
        app.reporter.info(&format!("wrote {name}"));
        app.reporter.json(serde_json::json!({"event": "wrote", "file": name}));
    }
    Ok(())
}

//! `devenv doctor`: every prerequisite and host check, each with a one-line fix; exit 3 if any blocks.

use super::App;
use crate::doctor::{self, Level};
use crate::error::{Error, Result};

pub fn run(app: &App) -> Result<()> {
    let ctx = crate::context::Context::new(app, None)?;
    let config = &ctx.config;
    // The tools as this command found them, then every other check.
    let mut findings = ctx.tools.clone();
    findings.extend(doctor::host_checks(&ctx.world, config, &app.vars, &app.cancel));
    let mut text = format!(
        "devenv doctor for environment `{}` ({})\n",
        config.project.name,
        config.project.driver.as_str()
    );
    for f in &findings {
        let mark = match f.level {
            Level::Ok => "✓",
            Level::Warning => "!",
            Level::Blocking => "✗",
        };
        text.push_str(&format!(" {mark} {}: {}\n", f.check, f.message));
        if let Some(h) = &f.help
            && f.level != Level::Ok
        {
            text.push_str(&format!("     help: {h}\n"));
        }
        let mut v = serde_json::to_value(f).unwrap_or_default();
        v["event"] = "finding".into();
        app.reporter.json(v);
    }
    app.reporter.data(&text);
    let blocking = findings.iter().filter(|f| f.level == Level::Blocking).count();
    let warnings = findings.iter().filter(|f| f.level == Level::Warning).count();
    app.reporter
        .json(serde_json::json!({"event": "summary", "command": "doctor", "blocking": blocking, "warnings": warnings}));
    if blocking > 0 {
        return Err(Error::prerequisite(
            format!("{blocking} blocking problem(s) found (marked ✗ above)"),
            "fix each as its help line says, then run `devenv doctor` again",
        ));
    }
    Ok(())
}

//! `devenv plan`: what `up` would do, step by step, with the reason for each.

use super::App;
use crate::cli::SelectArgs;
use crate::error::Result;
use crate::plan::{self, Plan};

pub fn render(p: &Plan) -> String {
    let mut out = format!(
        "Plan for environment `{}` ({}): {} change(s)\n",
        p.environment,
        p.driver,
        p.changes()
    );
    let width = p.steps.iter().map(|s| s.target.chars().count()).max().unwrap_or(0);
    for s in &p.steps {
        out.push_str(&format!(
            "  {} {:<8} {:<width$}  {}\n",
            s.change.sign(),
            s.change.word(),
            s.target,
            s.reason
        ));
    }
    for n in &p.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

pub fn to_json(p: &Plan) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["event"] = "plan".into();
    v["changes"] = p.changes().into();
    v
}

pub fn run(app: &App, select: &SelectArgs) -> Result<()> {
    let ctx = crate::context::Context::new(app, Some(select))?;
    let desired = &ctx.desired;
    // `plan` works before anything is installed: what cannot be observed is assumed absent, and said.
    let (observed, blind) = match ctx.observe(true) {
        Ok(o) => (o, None),
        Err(e @ crate::error::Error::Prerequisite { .. }) => (
            plan::Observed {
                cluster: crate::world::ClusterState::Absent,
                applied: None,
                others: vec![],
                releases: vec![],
                kubeconfig_present: false,
                images_missing: None,
                half_made: false,
            },
            Some(e),
        ),
        Err(e) => return Err(e),
    };
    let mut p = plan::plan(
        desired,
        &observed,
        plan::Options {
            recreate: select.recreate,
            restarted: false,
        },
    );
    if let Some(e) = blind {
        p.notes.push(format!("could not look at the cluster ({e}); the plan assumes it does not exist, and `devenv up` will stop until this is fixed"));
    }
    app.reporter.data(&render(&p));
    app.reporter.json(to_json(&p));
    Ok(())
}

//! `devenv plan`: what `up` would do, step by step, with the reason for each.

use super::App;
use crate::cli::SelectArgs;
use crate::error::Result;
use crate::plan::{self, Desired, Plan, Selection};

/// What a command acts on: its flags, and the optional components `--with` switched on before
/// (remembered in the state dir) plus this command line's `--with`, less its `--without`.
pub fn selection(state: &crate::state::State, s: Option<&SelectArgs>) -> Result<Selection> {
    // A name this devenv does not know (a newer one wrote it, or a hand edit) is not the user's typo now.
    let mut with: Vec<String> = state
        .remembered_with()
        .into_iter()
        .filter(|n| crate::config::project::OPTIONAL.contains(&n.as_str()))
        .collect();
    let mut sel = Selection::default();
    if let Some(s) = s {
        for n in &s.with {
            if s.without.contains(n) {
                return Err(crate::error::Error::usage(
                    format!("--with {n} and --without {n} contradict each other"),
                    "keep one of them",
                ));
            }
            if !with.contains(n) {
                with.push(n.clone());
            }
        }
        with.retain(|n| !s.without.contains(n));
        sel.only = s.only.clone();
        sel.skip = s.skip.clone();
        sel.no_test = s.no_test;
        sel.without = s.without.clone();
    }
    sel.with = with;
    Ok(sel)
}

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
            s.kind.sign(),
            s.kind.word(),
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
    let config = app.config()?;
    let state = app.state(&config);
    let desired = Desired::from_config(&config, &selection(&state, Some(select))?)?;
    let world = app.world(&config, &state)?;
    // `plan` works before anything is installed: what cannot be observed is assumed absent, and said.
    let (observed, blind) = match super::observe(&world, &state, &desired, true, &app.cancel) {
        Ok(o) => (o, None),
        Err(e @ crate::error::Error::Prerequisite { .. }) => (
            plan::Observed {
                cluster: crate::world::ClusterState::Absent,
                applied: None,
                others: vec![],
                releases: vec![],
                kubeconfig_present: false,
                images_missing: None,
            },
            Some(e),
        ),
        Err(e) => return Err(e),
    };
    let mut p = plan::plan(
        &desired,
        &observed,
        plan::Options {
            recreate: select.recreate,
        },
    );
    if let Some(e) = blind {
        p.notes.push(format!("could not look at the cluster ({e}); the plan assumes it does not exist, and `devenv up` will stop until this is fixed"));
    }
    app.reporter.data(&render(&p));
    app.reporter.json(to_json(&p));
    Ok(())
}

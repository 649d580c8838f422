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
    let cache = cache_view(&ctx, &observed);
    let mut text = render(&p);
    if !cache.is_empty() {
        text.push_str("\nimage cache (this machine's engine -> the nodes):\n");
        for (image, here, lacking) in &cache {
            text.push_str(&format!(
                "  {image}: {}{}\n",
                if *here {
                    "on this machine"
                } else {
                    "not on this machine (`up` pulls it once)"
                },
                match lacking {
                    Some(true) => ", not on every node",
                    Some(false) => ", on every node",
                    None => "",
                }
            ));
        }
    }
    app.reporter.data(&text);
    let mut v = to_json(&p);
    v["image_cache"] = cache
        .iter()
        .map(|(i, here, lacking)| serde_json::json!({"image": i, "on_this_machine": here, "on_every_node": lacking.map(|l| !l)}))
        .collect::<Vec<_>>()
        .into();
    app.reporter.json(v);
    Ok(())
}

/// Per pinned image of the cache: on this machine's engine, and (when the cluster runs) whether
/// some node lacks it.
fn cache_view(ctx: &crate::context::Context, o: &plan::Observed) -> Vec<(String, bool, Option<bool>)> {
    let images = &ctx.desired.cached_images;
    if images.is_empty() {
        return vec![];
    }
    let running = matches!(o.cluster, crate::world::ClusterState::Present { .. })
        && !o.half_made
        && o.cluster.stopped_nodes().is_empty();
    let lacking = running
        .then(|| {
            crate::images::missing_on_nodes(
                ctx.world.engine.as_ref(),
                ctx.world.images.as_ref(),
                ctx.name(),
                images,
                &ctx.app.cancel,
            )
            .ok()
        })
        .flatten();
    images
        .iter()
        .map(|i| {
            let here = ctx
                .world
                .images
                .local_image(i, &ctx.app.cancel)
                .ok()
                .flatten()
                .is_some();
            (i.clone(), here, lacking.as_ref().map(|l| l.contains(i)))
        })
        .collect()
}

//! The images of devenv.yaml, and the pinned images of the host image cache, loaded into every
//! node (the policy is `crate::images`).

use super::Steps;
use crate::error::Result;
use crate::exec::StepCtx;

pub fn load(s: &Steps, sc: &StepCtx) -> Result<()> {
    let ctx = s.ctx;
    let report = ctx
        .world
        .cluster
        .load_images(ctx.name(), &ctx.desired.images, &|_, _| {}, sc.cancel)?;
    for line in report.lines() {
        ctx.app.reporter.info(&format!("   {line}"));
    }
    Ok(())
}

/// The image cache's images that are on this machine (`up` pulled the missing ones before any
/// change), into every node: skipped by ID where a node has it, one export into all at once.
pub fn load_cache(s: &Steps, sc: &StepCtx) -> Result<()> {
    let ctx = s.ctx;
    let mut here = Vec::new();
    for i in &ctx.desired.cached_images {
        if ctx.world.images.local_image(i, sc.cancel)?.is_some() {
            here.push(i.clone());
        }
    }
    if !here.is_empty() {
        let report = ctx
            .world
            .cluster
            .load_images(ctx.name(), &here, &|_, _| {}, sc.cancel)?;
        for line in report.lines() {
            ctx.app.reporter.debug(&format!("   {line}"));
        }
    }
    s.set_record(&crate::plan::RecordKey::Cache, Some(&ctx.desired.cache_digest), sc)
}

//! The images of devenv.yaml loaded into every node (the policy is `crate::images`).

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

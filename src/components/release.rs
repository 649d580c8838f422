//! A project's own helm release (devenv.yaml `releases`): installed after the catalogue's
//! components and the local images, with the values files it names. devenv knows nothing of
//! its chart, so readiness waits for whatever workloads carry its instance label, if any.

use super::{ComponentSpec, Cx, ValuesSource};
use crate::config::project::Release;

pub fn spec(cx: &Cx, r: &Release, after: Vec<String>) -> crate::error::Result<ComponentSpec> {
    let mut c = ComponentSpec::new(cx.config, &r.name, &r.namespace, &r.chart);
    c.after = after;
    c.uses_images = true;
    for v in &r.values {
        let path = cx.config.dir.join(v);
        let text = crate::files::read_text(&path, crate::config::MAX_FILE, crate::files::Links::Follow)
            .map_err(|why| {
                crate::error::Error::usage(
                    format!("releases.{}.values: {v} {why}", r.name),
                    "name a regular YAML file of at most 1 MiB, relative to devenv.yaml",
                )
            })?
            .unwrap_or_default();
        c.values.push(ValuesSource {
            display: v.clone(),
            text,
            path: Some(path),
        });
    }
    Ok(c.sealed())
}

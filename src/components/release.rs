//! A project's own helm release (devenv.yaml `releases`): installed after the catalogue's
//! components and the local images, with the values files it names. devenv knows nothing of
//! its chart, so readiness waits for whatever workloads carry its instance label, if any.

use super::{ComponentSpec, Cx, ValuesSource};
use crate::config::project::Release;

pub fn spec(cx: &Cx, r: &Release, after: Vec<String>) -> ComponentSpec {
    let mut c = ComponentSpec::new(cx.config, &r.name, &r.namespace, &r.chart);
    c.after = after;
    c.uses_images = true;
    for v in &r.values {
        let path = cx.config.dir.join(v);
        c.values.push(ValuesSource {
            display: v.clone(),
            text: std::fs::read_to_string(&path).unwrap_or_default(),
            path: Some(path),
        });
    }
    c.sealed()
}

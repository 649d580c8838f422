//! Traefik (chart `traefik`), the maintained alternative to ingress-nginx (`ingress: traefik`).
//!
//! What the chart makes, as its render shows (`tests/it/charts.rs`):
//! - its workloads are labelled `app.kubernetes.io/instance: <release>-<namespace>`
//!   (`traefik-traefik`) unless `instanceLabelOverride` is set, so readiness waits on that label;
//! - its Service type is `service.spec.type` (default LoadBalancer; there is no `service.type`);
//! - the entrypoints' NodePorts are `ports.web.nodePort` and `ports.websecure.nodePort`;
//! - the IngressClass is `traefik`.

use super::{ComponentSpec, Cx, IngressRoute, pinned_images};
use crate::error::Result;
use crate::world::Workloads;
use serde_json::json;

pub const NAME: &str = "traefik";
pub const NAMESPACE: &str = "traefik";
pub const CLASS: &str = "traefik";
pub const IMAGES: &[&str] = &["traefik"];

/// The chart's `traefik.instance-name`: `instanceLabelOverride`, else `<release>-<namespace>`,
/// cut to 63 characters.
pub fn instance_label(override_: Option<&str>) -> String {
    let full = match override_.filter(|o| !o.is_empty()) {
        Some(o) => o.to_string(),
        None => format!("{NAME}-{NAMESPACE}"),
    };
    full.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

pub fn spec(cx: &Cx) -> Result<(ComponentSpec, IngressRoute)> {
    let p = &cx.config.project;
    let chart = &cx.config.versions.traefik;
    let mut c = ComponentSpec::new(cx.config, NAME, NAMESPACE, chart);
    let mut generated = json!({
        "service": {"spec": {"type": "NodePort"}},
        "ports": {
            "web": {"nodePort": p.node_ports.http.port},
            "websecure": {"nodePort": p.node_ports.https.port},
        },
    });
    for (_, r) in pinned_images(NAME, chart, IMAGES)? {
        // `<registry>/<repository>:<tag>`, or `@<digest>` instead of the tag when one is given.
        generated["image"] = json!({"registry": r.registry, "repository": r.repository, "tag": r.tag});
        if let Some(d) = &r.digest {
            generated["image"]["digest"] = json!(d);
        }
    }
    c.generated = generated;
    let user = c.merged_user_values();
    let label = instance_label(user["instanceLabelOverride"].as_str());
    c.ready = vec![Workloads {
        selector: format!("app.kubernetes.io/instance={label}"),
        require_some: true,
        ..Workloads::release(NAME, NAMESPACE)
    }];
    let class = user["ingressClass"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(CLASS)
        .to_string();
    let endpoint = super::expose_ingress(cx, &mut c);
    Ok((c.sealed(), IngressRoute { class, endpoint }))
}

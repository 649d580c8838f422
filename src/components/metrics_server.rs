//! metrics-server (optional), in `kube-system`: the metrics API behind `kubectl top` and
//! HorizontalPodAutoscalers.
//!
//! What the chart makes, as its render shows (`tests/it/charts.rs`): Deployment `metrics-server`
//! labelled `app.kubernetes.io/instance: metrics-server`, with `args` appended to its own flags;
//! its image is `image.repository:image.tag` (the repository includes the registry).

use super::{ComponentSpec, Cx, pinned_images};
use crate::config::Driver;
use crate::error::Result;
use crate::world::Workloads;
use serde_json::json;

pub const NAME: &str = "metrics-server";
pub const NAMESPACE: &str = "kube-system";
pub const IMAGES: &[&str] = &["metrics-server"];

pub fn spec(cx: &Cx) -> Result<ComponentSpec> {
    let chart = &cx.config.versions.metrics_server;
    let mut c = ComponentSpec::new(cx.config, NAME, NAMESPACE, chart);
    let mut generated = json!({});
    // kind's and minikube's kubelets serve self-signed certificates.
    if matches!(cx.config.project.driver, Driver::Kind | Driver::Minikube) {
        generated["args"] = json!(["--kubelet-insecure-tls"]);
    }
    for (_, r) in pinned_images(NAME, chart, IMAGES)? {
        generated["image"] = json!({
            "repository": format!("{}/{}", r.registry, r.repository),
            "tag": super::tag_with_digest(&r),
        });
    }
    c.generated = generated;
    c.ready = vec![Workloads {
        require_some: true,
        ..Workloads::release(NAME, NAMESPACE)
    }];
    c.metrics_api = true;
    Ok(c.sealed())
}

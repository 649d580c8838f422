//! ingress-nginx (chart `ingress-nginx`, pinned to its last release: the project was retired in
//! March 2026). Its controller Service is a NodePort on devenv.yaml's http/https NodePorts, which
//! kind-config.yaml maps to this machine.
//!
//! What the chart makes, as its render shows (`tests/it/charts.rs`): Deployment and Service
//! `ingress-nginx-controller` labelled `app.kubernetes.io/instance: ingress-nginx`, the
//! IngressClass `nginx`, and admission Jobs that are hooks (deleted on success, so not waited for).

use super::{ComponentSpec, Cx, IngressRoute, pinned_images};
use crate::error::Result;
use crate::world::Workloads;
use serde_json::json;

pub const NAME: &str = "ingress-nginx";
pub const NAMESPACE: &str = "ingress-nginx";
/// `controller.ingressClassResource.name`'s default.
pub const CLASS: &str = "nginx";
/// The controller's Service: `<release>-controller`.
pub const SERVICE: &str = "ingress-nginx-controller";
/// The images the chart runs, by the last part of their repository path.
pub const IMAGES: &[&str] = &["controller", "kube-webhook-certgen"];

pub fn spec(cx: &Cx) -> Result<(ComponentSpec, IngressRoute)> {
    let p = &cx.config.project;
    let chart = &cx.config.versions.ingress_nginx;
    let mut c = ComponentSpec::new(cx.config, NAME, NAMESPACE, chart);
    let mut generated = json!({"controller": {"service": {
        "type": "NodePort",
        "nodePorts": {"http": p.node_ports.http.port, "https": p.node_ports.https.port},
    }}});
    // Each image is `<registry>/<image>:<tag>@<digest>`, the registry from `global.image.registry`
    // unless the image names its own; an empty digest keeps the chart's own from applying to a
    // different tag.
    for (role, r) in pinned_images(NAME, chart, IMAGES)? {
        let at = match role {
            "controller" => "/controller/image",
            _ => "/controller/admissionWebhooks/patch/image",
        };
        let global = generated.pointer("/global/image/registry").and_then(|v| v.as_str());
        match global {
            None => super::values::set(&mut generated, "/global/image/registry", json!(r.registry)),
            Some(g) if g == r.registry => {}
            Some(_) => super::values::set(&mut generated, &format!("{at}/registry"), json!(r.registry)),
        }
        super::values::set(&mut generated, &format!("{at}/image"), json!(r.repository));
        super::values::set(&mut generated, &format!("{at}/tag"), json!(r.tag));
        super::values::set(
            &mut generated,
            &format!("{at}/digest"),
            json!(r.digest.clone().unwrap_or_default()),
        );
    }
    c.generated = generated;
    c.ready = vec![Workloads {
        require_some: true,
        ..Workloads::release(NAME, NAMESPACE)
    }];
    c.install_notice = Some(format!(
        "ingress-nginx was retired upstream in March 2026 (no fixes since); devenv pins its last release, chart {}. To switch to the maintained Traefik, set `ingress: traefik` in devenv.yaml.",
        chart.version.as_deref().unwrap_or("?")
    ));
    let endpoint = super::expose_ingress(cx, &mut c);
    let route = IngressRoute {
        class: CLASS.to_string(),
        endpoint,
    };
    Ok((c.sealed(), route))
}

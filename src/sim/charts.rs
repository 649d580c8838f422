//! What the pinned charts make from the values they are given, as the simulated world's helm
//! renders it: the objects devenv depends on (workloads and their labels, images, users and
//! claims; Services and NodePorts; Ingresses and IngressClasses; the `Prometheus` object an
//! operator acts on). Each model follows the chart's own templates for the values devenv and its
//! users set, and `tests/it/charts.rs` checks it against what real Helm renders from the pinned chart
//! (`../shared/samples/charts/`): a model that disagrees with the real chart fails there, so the
//! simulated world cannot keep an assumption the real chart does not share.
//!
//! Everything else a chart makes (RBAC, ConfigMaps, Secrets, ServiceMonitors) is left out.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One Deployment, StatefulSet, DaemonSet or Job the chart makes (not a hook).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// Its `app.kubernetes.io/instance` label: what readiness selects it by.
    pub instance: String,
    /// Every container's image, init containers first, as written.
    pub images: Vec<String>,
    /// The uid its (first) container runs as.
    pub run_as_user: Option<i64>,
    /// `PGDATA`, where one of its containers keeps PostgreSQL's data.
    pub pgdata: Option<String>,
    /// (mount path, claim) of each persistent claim its containers mount.
    pub claims: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    /// `ClusterIP`, `NodePort`, `LoadBalancer` (the last two both get NodePorts).
    pub type_: String,
    /// (port name, NodePort) of each port that has a NodePort set.
    pub node_ports: Vec<(String, u16)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingress {
    pub name: String,
    pub namespace: String,
    pub class: Option<String>,
    pub hosts: Vec<String>,
}

/// The objects devenv depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    pub workloads: Vec<Workload>,
    /// Images of the install/upgrade hooks (admission Jobs), which run and are deleted.
    pub hook_images: Vec<String>,
    pub services: Vec<Service>,
    pub ingresses: Vec<Ingress>,
    pub ingress_classes: Vec<String>,
    /// `Prometheus` objects, from which the Prometheus operator makes StatefulSets.
    pub operated: Vec<String>,
}

/// `values` coalesced over a chart's defaults, as helm does before rendering.
fn with_defaults(mut defaults: Value, values: &Value) -> Value {
    crate::components::values::merge(&mut defaults, values.clone());
    defaults
}

/// The value at a dotted path, when it is set and not null.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur.get(k)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn text(v: &Value, path: &str) -> Option<String> {
    match at(v, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text_or(v: &Value, path: &str, default: &str) -> String {
    text(v, path).unwrap_or_else(|| default.to_string())
}

/// A boolean value, `default` when unset.
fn flag(v: &Value, path: &str, default: bool) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(default)
}

fn port(v: &Value, path: &str) -> Option<u16> {
    match at(v, path)? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn uid(v: &Value, path: &str, default: i64) -> Option<i64> {
    Some(at(v, path).and_then(Value::as_i64).unwrap_or(default))
}

/// Helm's usual `<chart>.fullname`: the release name when it contains the chart's name.
fn fullname(release: &str, chart: &str, values: &Value) -> String {
    if let Some(f) = text(values, "fullnameOverride") {
        return f;
    }
    let name = text_or(values, "nameOverride", chart);
    let full = if release.contains(&name) {
        release.to_string()
    } else {
        format!("{release}-{name}")
    };
    full.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// NodePorts are only given to NodePort and LoadBalancer Services.
fn exposed(type_: &str, ports: Vec<(&str, Option<u16>)>) -> Vec<(String, u16)> {
    if type_ != "NodePort" && type_ != "LoadBalancer" {
        return vec![];
    }
    ports
        .into_iter()
        .filter_map(|(n, p)| p.map(|p| (n.to_string(), p)))
        .collect()
}

/// What `chart` makes as release `release` in `namespace` from the coalesced `values`; None for
/// a chart no model is written for (a project's own).
pub fn render(chart: &str, release: &str, namespace: &str, values: &Value) -> Option<Rendered> {
    let name = chart.rsplit('/').next().unwrap_or(chart);
    Some(match name {
        "ingress-nginx" => ingress_nginx(release, namespace, values),
        "traefik" => traefik(release, namespace, values),
        "postgres" => postgres(release, namespace, values),
        "redis" => redis(release, namespace, values),
        "metrics-server" => metrics_server(release, namespace, values),
        "kube-prometheus-stack" => kube_prometheus_stack(release, namespace, values),
        _ => return None,
    })
}

/// ingress-nginx 4.15: `controller.image` merged over `global.image`; the image is
/// `repository` or `registry/image`, then `:tag` and `@digest` when there is one.
fn ingress_nginx(release: &str, ns: &str, v: &Value) -> Rendered {
    // The chart's own defaults for what is read here (its values.yaml at helm-chart-4.15.1).
    let v = &with_defaults(
        serde_json::json!({
            "global": {"image": {"registry": "registry.k8s.io"}},
            "controller": {"image": {
                "image": "ingress-nginx/controller", "tag": "v1.15.1",
                "digest": "sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
                "digestChroot": "sha256:af31d00c9d82c612896b380a9003bd36843b7647b98e4588251c66325317bc72",
            }, "admissionWebhooks": {"patch": {"image": {
                "image": "ingress-nginx/kube-webhook-certgen", "tag": "v1.6.9",
                "digest": "sha256:01038e7de14b78d702d2849c3aad72fd25903c4765af63cf16aa3398f5d5f2dd",
            }}}},
        }),
        v,
    );
    let full = fullname(release, "ingress-nginx", v);
    let image = |at_: &str, chroot: bool| {
        let reg = text(v, &format!("{at_}.registry"))
            .unwrap_or_else(|| text_or(v, "global.image.registry", "registry.k8s.io"));
        let base = match text(v, &format!("{at_}.repository")) {
            Some(r) => r,
            None => {
                let img = text_or(v, &format!("{at_}.image"), "");
                if chroot {
                    format!("{reg}/{img}-chroot")
                } else {
                    format!("{reg}/{img}")
                }
            }
        };
        let digest = text(v, &format!("{at_}.{}", if chroot { "digestChroot" } else { "digest" }));
        let mut s = format!("{base}:{}", text_or(v, &format!("{at_}.tag"), ""));
        if let Some(d) = digest {
            s.push('@');
            s.push_str(&d);
        }
        s
    };
    let chroot = flag(v, "controller.image.chroot", false);
    let mut r = Rendered {
        workloads: vec![Workload {
            kind: text_or(v, "controller.kind", "Deployment"),
            name: format!("{full}-controller"),
            namespace: ns.into(),
            instance: release.into(),
            images: vec![image("controller.image", chroot)],
            run_as_user: uid(v, "controller.image.runAsUser", 101),
            ..Default::default()
        }],
        ..Default::default()
    };
    let webhooks = flag(v, "controller.admissionWebhooks.enabled", true);
    if webhooks && flag(v, "controller.admissionWebhooks.patch.enabled", true) {
        let certgen = image("controller.admissionWebhooks.patch.image", false);
        r.hook_images = vec![certgen.clone(), certgen];
    }
    if webhooks {
        r.services.push(Service {
            name: format!("{full}-controller-admission"),
            namespace: ns.into(),
            type_: "ClusterIP".into(),
            node_ports: vec![],
        });
    }
    let type_ = text_or(v, "controller.service.type", "LoadBalancer");
    r.services.push(Service {
        name: format!("{full}-controller"),
        namespace: ns.into(),
        node_ports: exposed(
            &type_,
            vec![
                ("http", port(v, "controller.service.nodePorts.http")),
                ("https", port(v, "controller.service.nodePorts.https")),
            ],
        ),
        type_,
    });
    if flag(v, "controller.ingressClassResource.enabled", true) {
        r.ingress_classes
            .push(text_or(v, "controller.ingressClassResource.name", "nginx"));
    }
    r
}

/// traefik 41.3: workloads labelled `instanceLabelOverride` or `<release>-<namespace>`; the
/// Service's type is `service.spec.type`; the image `registry/repository:tag`, or `@digest`.
fn traefik(release: &str, ns: &str, v: &Value) -> Rendered {
    let full = fullname(release, "traefik", v);
    let instance = text(v, "instanceLabelOverride").unwrap_or_else(|| format!("{release}-{ns}"));
    let instance = instance
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string();
    let reg = text_or(v, "image.registry", "docker.io");
    let repo = text_or(v, "image.repository", "traefik");
    let image = match text(v, "image.digest") {
        Some(d) => format!("{reg}/{repo}@{d}"),
        None => format!("{reg}/{repo}:{}", text_or(v, "image.tag", "v3.7.11")),
    };
    let type_ = text_or(v, "service.spec.type", "LoadBalancer");
    let mut r = Rendered {
        workloads: vec![Workload {
            kind: text_or(v, "deployment.kind", "Deployment"),
            name: full.clone(),
            namespace: ns.into(),
            instance,
            images: vec![image],
            run_as_user: uid(v, "securityContext.runAsUser", 65532),
            ..Default::default()
        }],
        services: vec![Service {
            name: full.clone(),
            namespace: ns.into(),
            node_ports: exposed(
                &type_,
                vec![
                    ("web", port(v, "ports.web.nodePort")),
                    ("websecure", port(v, "ports.websecure.nodePort")),
                ],
            ),
            type_,
        }],
        ..Default::default()
    };
    if flag(v, "ingressClass.enabled", true) {
        r.ingress_classes.push(text(v, "ingressClass.name").unwrap_or(full));
    }
    r
}

/// groundhog2k postgres 1.6: a StatefulSet (init container and server) on
/// `image.registry/image.repository:(image.tag or the chart's appVersion)`, running as
/// `securityContext.runAsUser` with `PGDATA=settings.dataDir/settings.pgDir`, mounting
/// `storage.persistentVolumeClaimName`, else a claim template when `storage.requestedSize` is set.
fn postgres(release: &str, ns: &str, v: &Value) -> Rendered {
    let full = fullname(release, "postgres", v);
    let image = format!(
        "{}/{}:{}",
        text_or(v, "image.registry", "docker.io"),
        text_or(v, "image.repository", "postgres"),
        text_or(v, "image.tag", "18.4")
    );
    let data = text_or(v, "settings.dataDir", "/var/lib/postgresql/data");
    let kind = if flag(v, "useDeployment", false) {
        "Deployment"
    } else {
        "StatefulSet"
    };
    let claims = match text(v, "storage.persistentVolumeClaimName") {
        Some(c) => vec![(data.clone(), c)],
        None if at(v, "storage.requestedSize").is_some() && kind == "StatefulSet" => vec![(
            data.clone(),
            format!("{}-{full}-0", text_or(v, "storage.volumeName", "postgres-data")),
        )],
        None => vec![],
    };
    let type_ = text_or(v, "service.type", "ClusterIP");
    Rendered {
        workloads: vec![Workload {
            kind: kind.into(),
            name: full.clone(),
            namespace: ns.into(),
            instance: release.into(),
            images: vec![image.clone(), image],
            run_as_user: uid(v, "securityContext.runAsUser", 999),
            pgdata: Some(format!("{data}/{}", text_or(v, "settings.pgDir", "pg"))),
            claims,
        }],
        services: vec![Service {
            name: full,
            namespace: ns.into(),
            node_ports: exposed(&type_, vec![("postgres", port(v, "service.nodePort"))]),
            type_,
        }],
        ..Default::default()
    }
}

/// groundhog2k redis 2.4: a Deployment (a StatefulSet in HA mode) on
/// `image.registry/image.repository:(image.tag or appVersion)`, a claim of its own when
/// `storage.requestedSize` is set, the Service and a headless one.
fn redis(release: &str, ns: &str, v: &Value) -> Rendered {
    let full = fullname(release, "redis", v);
    let image = format!(
        "{}/{}:{}",
        text_or(v, "image.registry", "docker.io"),
        text_or(v, "image.repository", "redis"),
        text_or(v, "image.tag", "8.8.0")
    );
    let ha = flag(v, "haMode.enabled", false);
    let claims = if at(v, "storage.requestedSize").is_some() && !ha {
        vec![("/data".to_string(), full.clone())]
    } else {
        vec![]
    };
    let type_ = text_or(v, "service.type", "ClusterIP");
    Rendered {
        workloads: vec![Workload {
            kind: if ha { "StatefulSet" } else { "Deployment" }.into(),
            name: full.clone(),
            namespace: ns.into(),
            instance: release.into(),
            images: vec![image.clone(), image],
            run_as_user: uid(v, "securityContext.runAsUser", 999),
            pgdata: None,
            claims,
        }],
        services: vec![
            Service {
                name: format!("{full}-headless"),
                namespace: ns.into(),
                type_: "ClusterIP".into(),
                node_ports: vec![],
            },
            Service {
                name: full,
                namespace: ns.into(),
                node_ports: exposed(&type_, vec![("redis", port(v, "service.nodePort"))]),
                type_,
            },
        ],
        ..Default::default()
    }
}

/// metrics-server 3.13: `image.repository:(image.tag or appVersion)`.
fn metrics_server(release: &str, ns: &str, v: &Value) -> Rendered {
    let full = fullname(release, "metrics-server", v);
    Rendered {
        workloads: vec![Workload {
            kind: "Deployment".into(),
            name: full.clone(),
            namespace: ns.into(),
            instance: release.into(),
            images: vec![format!(
                "{}:{}",
                text_or(v, "image.repository", "registry.k8s.io/metrics-server/metrics-server"),
                text_or(v, "image.tag", "v0.8.0")
            )],
            run_as_user: uid(v, "securityContext.runAsUser", 1000),
            ..Default::default()
        }],
        services: vec![Service {
            name: full,
            namespace: ns.into(),
            type_: text_or(v, "service.type", "ClusterIP"),
            node_ports: vec![],
        }],
        ..Default::default()
    }
}

/// kube-prometheus-stack 88.2 with its subcharts (grafana 12.10, kube-state-metrics 8.2,
/// prometheus-node-exporter 4.56): each part when enabled, the Ingresses of `grafana.ingress` and
/// `prometheus.ingress`, and the `Prometheus` object the operator turns into a StatefulSet.
fn kube_prometheus_stack(release: &str, ns: &str, v: &Value) -> Rendered {
    let kp = format!("{release}-kube-prometheus");
    let mut r = Rendered::default();
    let deployment = |name: String, images: &[&str], uid: i64| Workload {
        kind: "Deployment".into(),
        name,
        namespace: ns.into(),
        instance: release.into(),
        images: images.iter().map(|s| s.to_string()).collect(),
        run_as_user: Some(uid),
        ..Default::default()
    };
    let service = |name: String, namespace: &str| Service {
        name,
        namespace: namespace.into(),
        type_: "ClusterIP".into(),
        node_ports: vec![],
    };
    let ingress = |name: String, at_: &str| -> Option<Ingress> {
        flag(v, &format!("{at_}.ingress.enabled"), false).then(|| Ingress {
            name,
            namespace: ns.into(),
            class: text(v, &format!("{at_}.ingress.ingressClassName")),
            hosts: at(v, &format!("{at_}.ingress.hosts"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|h| h.as_str().map(String::from)).collect())
                .unwrap_or_default(),
        })
    };
    if flag(v, "grafana.enabled", true) {
        let name = format!("{release}-grafana");
        r.workloads.push(deployment(
            name.clone(),
            &[
                "quay.io/kiwigrid/k8s-sidecar:2.10.1",
                "quay.io/kiwigrid/k8s-sidecar:2.10.1",
                "docker.io/grafana/grafana:13.1.3",
            ],
            472,
        ));
        r.services.push(service(name.clone(), ns));
        r.ingresses.extend(ingress(name, "grafana"));
    }
    if flag(v, "kubeStateMetrics.enabled", true) {
        let name = format!("{release}-kube-state-metrics");
        r.workloads.push(deployment(
            name.clone(),
            &["registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.19.1"],
            65534,
        ));
        r.services.push(service(name, ns));
    }
    if flag(v, "nodeExporter.enabled", true) {
        let name = format!("{release}-prometheus-node-exporter");
        r.workloads.push(Workload {
            kind: "DaemonSet".into(),
            ..deployment(
                name.clone(),
                &["quay.io/prometheus/node-exporter:v1.12.1-distroless"],
                65534,
            )
        });
        r.services.push(service(name, ns));
    }
    if flag(v, "coreDns.enabled", true) {
        r.services.push(service(format!("{kp}-coredns"), "kube-system"));
    }
    if flag(v, "prometheusOperator.enabled", true) {
        let name = format!("{kp}-operator");
        r.workloads.push(deployment(
            name.clone(),
            &["quay.io/prometheus-operator/prometheus-operator:v0.93.0"],
            65534,
        ));
        r.services.push(service(name, ns));
        if flag(v, "prometheusOperator.admissionWebhooks.enabled", true) {
            let certgen = "ghcr.io/jkroepke/kube-webhook-certgen:1.8.5".to_string();
            r.hook_images = vec![certgen.clone(), certgen];
        }
    }
    if flag(v, "prometheus.enabled", true) {
        let name = format!("{kp}-prometheus");
        r.services.push(service(name.clone(), ns));
        r.ingresses.extend(ingress(name.clone(), "prometheus"));
        r.operated.push(name);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_chart_without_a_model_renders_nothing_known() {
        assert_eq!(render("./charts/web", "web", "web", &json!({})), None);
    }

    #[test]
    fn nodeports_only_exist_on_nodeport_and_loadbalancer_services() {
        let v = json!({"service": {"nodePort": 30432}});
        let r = render("postgres", "postgresql", "devenv-data", &v).unwrap();
        assert_eq!(r.services[0].type_, "ClusterIP");
        assert!(r.services[0].node_ports.is_empty());
    }
}

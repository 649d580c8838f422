//! Monitoring (optional): kube-prometheus-stack, with Grafana and Prometheus behind the
//! environment's ingress on `grafana.<env>.localhost` and `prometheus.<env>.localhost`.
//!
//! What the chart makes, as its render shows (`tests/it/charts.rs`): Deployments (Grafana,
//! kube-state-metrics, the operator) and the node-exporter DaemonSet labelled
//! `app.kubernetes.io/instance: monitoring`; the Ingresses `monitoring-grafana` and
//! `monitoring-kube-prometheus-prometheus` from `grafana.ingress` and `prometheus.ingress`; and a
//! `Prometheus` object from which the operator makes a StatefulSet with labels of its own, once it
//! runs. The generated values are one mapping: with two `grafana:` keys in one file, helm keeps the
//! last and the Ingress is lost.

use super::{ComponentSpec, Cx, EnvVar, IngressRoute, Part, Secret};
use crate::error::Result;
use crate::world::{Check, Probe, Workloads};
use serde_json::json;

pub const NAME: &str = "monitoring";
pub const NAMESPACE: &str = "monitoring";
pub const GRAFANA_USER: &str = "admin";
/// The StatefulSet the Prometheus operator makes (its labels, not the release's).
pub const PROMETHEUS_SELECTOR: &str =
    "app.kubernetes.io/name=prometheus,app.kubernetes.io/managed-by=prometheus-operator";

/// The apps of the stack devenv exposes: those `helm-values/monitoring.yaml` does not switch off.
pub fn apps(c: &ComponentSpec) -> Vec<&'static str> {
    let user = c.merged_user_values();
    ["grafana", "prometheus"]
        .into_iter()
        .filter(|app| user[app]["enabled"] != serde_json::Value::Bool(false))
        .collect()
}

pub fn spec(cx: &Cx, ingress: Option<(&str, &IngressRoute)>) -> Result<ComponentSpec> {
    let p = &cx.config.project;
    let mut c = ComponentSpec::new(cx.config, NAME, NAMESPACE, &cx.config.versions.monitoring);
    let apps = apps(&c);
    let mut generated = json!({"grafana": {"adminUser": GRAFANA_USER}});
    let host = |app: &str| format!("{app}.{}.localhost", p.name);
    if let Some((_, route)) = ingress {
        for app in &apps {
            generated[app]["ingress"] = json!({
                "enabled": true,
                "ingressClassName": route.class,
                "hosts": [host(app)],
            });
        }
    }
    c.generated = generated;
    c.secrets = vec![("/grafana/adminPassword", Secret::GrafanaPassword)];
    // The controller's admission webhook must answer before the chart's Ingresses are created.
    c.after = ingress.map(|(n, _)| vec![n.to_string()]).unwrap_or_default();
    c.ready = vec![Workloads {
        require_some: true,
        ..Workloads::release(NAME, NAMESPACE)
    }];
    if apps.contains(&"prometheus") {
        c.ready.push(Workloads {
            what: "prometheus".into(),
            namespace: NAMESPACE.into(),
            selector: PROMETHEUS_SELECTOR.into(),
            require_some: true,
        });
    }
    let endpoint = ingress.and_then(|(_, r)| r.endpoint.clone());
    if let Some((address, port)) = &endpoint {
        for app in &apps {
            let check = match *app {
                "grafana" => Check::Grafana { host_header: host(app) },
                _ => Check::Prometheus { host_header: host(app) },
            };
            c.probes.push(Probe {
                name: app.to_string(),
                host: address.clone(),
                port: *port,
                check,
            });
            let url = super::http_url(&host(app), *port);
            match *app {
                "grafana" => {
                    c.env.push(EnvVar::text("GRAFANA_URL", url.clone()));
                    c.endpoint = Some(url);
                }
                _ => c.env.push(EnvVar::text("PROMETHEUS_URL", url)),
            }
        }
    }
    // Also without an ingress to reach Grafana through: a port-forward needs the login too.
    c.env.push(EnvVar::text("GRAFANA_USER", GRAFANA_USER));
    c.env.push(EnvVar {
        name: "GRAFANA_PASSWORD",
        value: vec![Part::Secret(Secret::GrafanaPassword)],
    });
    if apps.contains(&"grafana") && endpoint.is_none() {
        c.notes.push(format!(
            "Grafana and Prometheus are not reachable from this machine through an ingress here ({}): use `kubectl -n {NAMESPACE} port-forward svc/{NAME}-grafana 3000:80` (with `eval \"$(devenv env)\"`)",
            if ingress.is_none() {
                "`ingress: none`".to_string()
            } else {
                format!("the {} driver maps no host ports", p.driver.as_str())
            }
        ));
    }
    Ok(c.sealed())
}

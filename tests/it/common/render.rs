//! Reading what real Helm rendered (`../shared/samples/charts/*/rendered*.yaml`) into the same
//! facts the simulated world's chart models produce (`devenv::sim::charts::Rendered`), so
//! that the two can be compared.

use devenv::sim::charts::{Ingress, Rendered, Service, Workload};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `../shared/samples/charts`, beside the checkout. Under CI its absence fails the test; elsewhere
/// the test says it did not run.
pub fn samples() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples/charts");
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!(
            "CI is set but {} is missing: the contract tests read the real renders there (CI checks out ../shared beside the repository)",
            dir.display()
        );
    }
    eprintln!("NOT RUN: the real chart renders are not at {}", dir.display());
    None
}

const WORKLOADS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job"];

/// The facts of a multi-document manifest as Helm rendered it for a release in `namespace`.
pub fn facts(text: &str, namespace: &str) -> Rendered {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("a render is YAML");
    let mut r = Rendered::default();
    for d in docs.into_iter().filter(|d| d.is_object()) {
        let kind = d["kind"].as_str().unwrap_or("").to_string();
        let meta = &d["metadata"];
        let name = meta["name"].as_str().unwrap_or("").to_string();
        let ns = meta["namespace"].as_str().unwrap_or(namespace).to_string();
        let hook = meta["annotations"]["helm.sh/hook"].as_str().map(String::from);
        let instance = meta["labels"]["app.kubernetes.io/instance"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if WORKLOADS.contains(&kind.as_str()) || kind == "Pod" {
            let spec = if kind == "Pod" {
                &d["spec"]
            } else {
                &d["spec"]["template"]["spec"]
            };
            let list = |k: &str| spec[k].as_array().cloned().unwrap_or_default();
            let containers = list("containers");
            let images: Vec<String> = list("initContainers")
                .iter()
                .chain(&containers)
                .filter_map(|c| c["image"].as_str().map(String::from))
                .collect();
            if let Some(h) = hook {
                if h != "test" {
                    r.hook_images.extend(images);
                }
                continue;
            }
            if kind == "Pod" {
                continue;
            }
            let main = &containers[0];
            let run_as_user = main["securityContext"]["runAsUser"]
                .as_i64()
                .or_else(|| spec["securityContext"]["runAsUser"].as_i64());
            let pgdata = containers
                .iter()
                .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
                .find(|e| e["name"] == "PGDATA")
                .and_then(|e| e["value"].as_str().map(String::from));
            // Claims: volumes from a persistentVolumeClaim, or a StatefulSet's claim templates
            // (the first pod's claim is `<template>-<statefulset>-0`).
            let mut volumes: Vec<(String, String)> = list("volumes")
                .iter()
                .filter_map(|v| {
                    Some((
                        v["name"].as_str()?.to_string(),
                        v["persistentVolumeClaim"]["claimName"].as_str()?.to_string(),
                    ))
                })
                .collect();
            for t in d["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten() {
                let t = t["metadata"]["name"].as_str().unwrap_or("");
                volumes.push((t.to_string(), format!("{t}-{name}-0")));
            }
            let claims = containers
                .iter()
                .flat_map(|c| c["volumeMounts"].as_array().cloned().unwrap_or_default())
                .filter_map(|m| {
                    let claim = volumes.iter().find(|(v, _)| m["name"] == v.as_str())?.1.clone();
                    Some((m["mountPath"].as_str()?.to_string(), claim))
                })
                .collect();
            r.workloads.push(Workload {
                kind,
                name,
                namespace: ns,
                instance,
                images,
                run_as_user,
                pgdata,
                claims,
            });
        } else if kind == "Service" && hook.is_none() {
            let type_ = d["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
            let node_ports = d["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p["name"].as_str().unwrap_or("").to_string(),
                        u16::try_from(p["nodePort"].as_u64()?).ok()?,
                    ))
                })
                .collect();
            r.services.push(Service {
                name,
                namespace: ns,
                type_,
                node_ports,
            });
        } else if kind == "Ingress" {
            r.ingresses.push(Ingress {
                name,
                namespace: ns,
                class: d["spec"]["ingressClassName"].as_str().map(String::from),
                hosts: d["spec"]["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x["host"].as_str().map(String::from))
                    .collect(),
            });
        } else if kind == "IngressClass" {
            r.ingress_classes.push(name);
        } else if kind == "Prometheus" {
            r.operated.push(name);
        }
    }
    sorted(r)
}

/// Facts in one order, so that a model and a render compare equal when they say the same.
pub fn sorted(mut r: Rendered) -> Rendered {
    r.workloads
        .sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    r.services
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    r.ingresses
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    r.hook_images.sort();
    r.ingress_classes.sort();
    r.operated.sort();
    r
}

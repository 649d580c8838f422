//! The objects devenv writes, built by pure functions and typed by k8s-openapi: the smoke run's
//! echo backend, Service, Ingress and Jobs, the volumes on this machine and their claims.

use crate::world::{
    DATA_STORAGE_CLASS, HOST_PATH_TYPE, SMOKE_CREATED, SMOKE_LABEL, SMOKE_OWNER, SmokeSpec, VolumeSpec,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use std::time::Duration;

/// devenv's own objects, written as JSON and typed by k8s-openapi. In debug builds (every test)
/// the typed object must serialize back to the same JSON: a misspelt or misplaced field, which
/// the API server would drop without a word, fails loudly instead.
pub(super) fn parse<T: serde::de::DeserializeOwned + serde::Serialize>(v: serde_json::Value) -> T {
    let typed: T = serde_json::from_value(v.clone()).expect("devenv's own objects are valid");
    if cfg!(debug_assertions) {
        let mut back = serde_json::to_value(&typed).expect("serializes");
        // The types add their own apiVersion and kind.
        if let Some(m) = back.as_object_mut() {
            for k in ["apiVersion", "kind"] {
                if v.get(k).is_none() {
                    m.remove(k);
                }
            }
        }
        assert_eq!(
            normalize(back),
            normalize(v),
            "an object devenv writes has a field its Kubernetes type does not know"
        );
    }
    typed
}

/// Numbers as text (quantities may be written either way), nulls and empty objects dropped.
fn normalize(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k, normalize(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        Value::Number(n) => Value::String(n.to_string()),
        other => other,
    }
}

/// The smoke objects of one run, all labelled so that readiness and cleanup find them.
pub fn smoke_objects(s: &SmokeSpec) -> (Namespace, Deployment, Service, Ingress) {
    let labels =
        serde_json::json!({"app.kubernetes.io/instance": "devenv-smoke", "app.kubernetes.io/managed-by": "devenv"});
    let ns = parse(serde_json::json!({
        "metadata": {
            "name": s.namespace,
            "labels": {SMOKE_LABEL: s.env, "app.kubernetes.io/managed-by": "devenv"},
            "annotations": {SMOKE_OWNER: s.owner, SMOKE_CREATED: s.created.to_string()},
        }
    }));
    let deployment = parse(serde_json::json!({
        "metadata": {"name": "echo", "namespace": s.namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": "devenv-smoke"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{
                        "name": "echo",
                        "image": s.echo_image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": [format!("-text={}", s.token), "-listen=:5678"],
                        "ports": [{"containerPort": 5678}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": 5678}, "periodSeconds": 1},
                        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}},
                    }],
                    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
                },
            },
        },
    }));
    let service = parse(serde_json::json!({
        "metadata": {"name": "echo", "namespace": s.namespace, "labels": labels},
        "spec": {"selector": {"app.kubernetes.io/instance": "devenv-smoke"}, "ports": [{"port": 80, "targetPort": 5678}]},
    }));
    let mut ingress_spec = serde_json::json!({"rules": [{"host": s.host, "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "echo", "port": {"number": 80}}},
    }]}}]});
    // Named, so the run proves the environment's own controller routes (not some default class).
    if let Some(class) = &s.ingress_class {
        ingress_spec["ingressClassName"] = class.as_str().into();
    }
    let ingress = parse(serde_json::json!({
        "metadata": {"name": "echo", "namespace": s.namespace, "labels": labels},
        "spec": ingress_spec,
    }));
    (ns, deployment, service, ingress)
}

/// A hostPath volume on the node path where the data directory is mounted, pre-bound to its
/// claim (`claimRef` + `volumeName`, a storage class with no provisioner), kept when released.
pub fn volume_objects(v: &VolumeSpec) -> (Namespace, PersistentVolume, PersistentVolumeClaim) {
    let labels =
        serde_json::json!({"app.kubernetes.io/managed-by": "devenv", "app.kubernetes.io/component": v.component});
    let ns = parse(serde_json::json!({"metadata": {"name": v.namespace}}));
    let pv = parse(serde_json::json!({
        "metadata": {"name": v.name, "labels": labels},
        "spec": {
            "capacity": {"storage": v.size},
            "accessModes": [v.access.as_str()],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": DATA_STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "hostPath": {"path": v.node_path, "type": HOST_PATH_TYPE},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": v.namespace, "name": v.claim},
        },
    }));
    let pvc = parse(serde_json::json!({
        "metadata": {"name": v.claim, "namespace": v.namespace, "labels": labels},
        "spec": {
            "accessModes": [v.access.as_str()],
            "storageClassName": DATA_STORAGE_CLASS,
            "volumeName": v.name,
            "resources": {"requests": {"storage": v.size}},
        },
    }));
    (ns, pv, pvc)
}

/// The shared volume check's Jobs: the writer puts the run's token into a file on the claim, the
/// reader (kept off `avoid_node` when the cluster has another) checks and removes it. The token
/// and file name travel as arguments, never as script; `DIR` is the claim's mount path.
pub fn shared_job_object(
    s: &SmokeSpec,
    v: &VolumeSpec,
    role: &str,
    avoid_node: Option<&str>,
    timeout: Duration,
) -> Job {
    let script = match role {
        "write" => "printf %s \"$0\" > \"$DIR/$1\"",
        _ => "test \"$(cat \"$DIR/$1\")\" = \"$0\" && rm -f \"$DIR/$1\"",
    };
    let instance = format!("devenv-shared-{role}-{}", s.token);
    let mut spec = serde_json::json!({
        "restartPolicy": "Never",
        "containers": [{
            "name": role,
            "image": s.probe_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script, s.token, format!(".devenv-smoke-{}", s.token)],
            "env": [{"name": "DIR", "value": "/shared"}],
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
            "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}},
        }],
        "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": v.claim}}],
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
    });
    if let Some(node) = avoid_node {
        spec["affinity"] = serde_json::json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [node]}]},
        }]}});
    }
    parse(serde_json::json!({
        "metadata": {"name": instance, "namespace": v.namespace, "labels": {"app.kubernetes.io/instance": instance, "app.kubernetes.io/managed-by": "devenv"}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": timeout.as_secs().max(10),
            // Gone on their own if devenv is killed before it deletes them.
            "ttlSecondsAfterFinished": 300,
            "template": {"metadata": {"labels": {"app.kubernetes.io/instance": instance}}, "spec": spec},
        },
    }))
}

/// The in-cluster check: one container per service, each resolving its name by cluster DNS and
/// connecting (busybox `nslookup` and `nc -z`; the names travel as arguments, never as script).
pub fn smoke_job_object(s: &SmokeSpec, targets: &[(String, u16)], timeout: Duration) -> Job {
    let containers: Vec<serde_json::Value> = targets
        .iter()
        .map(|(host, port)| {
            let short = host.split('.').next().unwrap_or("service");
            serde_json::json!({
                "name": format!("connect-{short}"),
                "image": s.probe_image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "nslookup \"$0\" && nc -z -w 5 \"$0\" \"$1\"", host, port.to_string()],
                "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}},
            })
        })
        .collect();
    parse(serde_json::json!({
        "metadata": {"name": "dns", "namespace": s.namespace, "labels": {"app.kubernetes.io/instance": "devenv-smoke-dns", "app.kubernetes.io/managed-by": "devenv"}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": timeout.as_secs().max(10),
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/instance": "devenv-smoke-dns"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": containers,
                    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
                },
            },
        },
    }))
}

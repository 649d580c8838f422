//! The Kubernetes API through kube-rs, always with the environment's own kubeconfig and an
//! explicit context: devenv's record (one ConfigMap per environment in kube-system), node and
//! release readiness with explanations, and the smoke namespace of a run.
//!
//! Each call builds a small runtime and client, runs its requests (concurrently where they are
//! independent) and polls where it waits, so a cancelled run stops within a fraction of a second.

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::readiness::{self, Snapshot, Verdict};
use crate::world::{
    Applied, DATA_STORAGE_CLASS, HOST_PATH_TYPE, Kube, KubeTarget, ReleaseInfo, SMOKE_CREATED, SMOKE_LABEL,
    SMOKE_OWNER, SmokeNamespace, SmokeSpec, VolumeSpec, Workloads,
};
use futures_util::future::try_join5;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct KubeApi;

pub const RECORD_NAMESPACE: &str = "kube-system";

/// The label naming the environment a record is of.
pub const ENV_LABEL: &str = "devenv.dev/environment";

pub fn configmap_name(env: &str) -> String {
    format!("devenv-{env}")
}

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(1000);

/// Runs `fut` on a fresh runtime with a client for `t`; a cancelled run stops it within 50 ms.
fn block<T, F, Fut>(t: &KubeTarget, cancel: &Cancel, f: F) -> Result<T>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("cannot start an async runtime: {e}"), ""))?;
    rt.block_on(cancel.race(async { f(connect(t).await?).await }))
}

/// A client for exactly this kubeconfig file and context, never the user's current context.
pub async fn connect(t: &KubeTarget) -> Result<Client> {
    let bad = |e: String| {
        Error::failed(
            format!("{}: {e}", t.kubeconfig.display()),
            "this is the environment's kubeconfig: delete it and run `devenv up` to write it again",
        )
    };
    let kc = Kubeconfig::read_from(&t.kubeconfig).map_err(|e| bad(format!("not a usable kubeconfig ({e})")))?;
    let options = KubeConfigOptions {
        context: Some(t.context.clone()),
        ..Default::default()
    };
    let mut config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| bad(format!("context `{}` cannot be used ({e})", t.context)))?;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|e| bad(format!("cannot build an API client ({e})")))
}

/// The API's error, naming what devenv asked for.
fn api(what: &str, t: &KubeTarget) -> impl Fn(kube::Error) -> Error + use<> {
    let (what, context) = (what.to_string(), t.context.clone());
    move |e| {
        let detail = match &e {
            kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
            other => other.to_string(),
        };
        Error::failed(
            format!("{what} (context {context}): {detail}"),
            "is the cluster running? `devenv status` says; `devenv doctor` checks Docker",
        )
    }
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The ingress controller's admission webhook is not answering yet (ingress-nginx#5401).
pub fn is_webhook_race(e: &kube::Error) -> bool {
    let text = match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    };
    text.contains("failed calling webhook") || text.contains("no endpoints available for service")
}

/// The workloads, pods, events and crash logs of everything labelled `selector` in `ns`.
async fn snapshot(client: &Client, ns: &str, selector: &str, t: &KubeTarget) -> Result<Snapshot> {
    let lp = ListParams::default().labels(selector);
    let err = api(&format!("listing the objects of `{selector}` in namespace {ns}"), t);
    let (deployments, statefulsets, daemonsets, jobs, pods) = try_join5(
        Api::<Deployment>::namespaced(client.clone(), ns).list(&lp),
        Api::<StatefulSet>::namespaced(client.clone(), ns).list(&lp),
        Api::<DaemonSet>::namespaced(client.clone(), ns).list(&lp),
        Api::<Job>::namespaced(client.clone(), ns).list(&lp),
        Api::<Pod>::namespaced(client.clone(), ns).list(&lp),
    )
    .await
    .map_err(err)?;
    Ok(Snapshot {
        deployments: deployments.items,
        statefulsets: statefulsets.items,
        daemonsets: daemonsets.items,
        jobs: jobs.items,
        pods: pods.items,
        ..Default::default()
    })
}

/// Adds what explains a stuck snapshot: Warning events about its objects, crash log tails.
async fn explainers(client: &Client, ns: &str, s: &mut Snapshot) {
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut add = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        names.extend(m.name.clone());
    };
    s.deployments.iter().for_each(|o| add(&o.metadata));
    s.statefulsets.iter().for_each(|o| add(&o.metadata));
    s.daemonsets.iter().for_each(|o| add(&o.metadata));
    s.jobs.iter().for_each(|o| add(&o.metadata));
    s.pods.iter().for_each(|o| add(&o.metadata));
    if let Ok(events) = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        // ReplicaSets (`web-7d9f`) carry their Deployment's name as a prefix.
        s.events = events
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object
                    .name
                    .as_deref()
                    .is_some_and(|n| names.iter().any(|o| n == o || n.starts_with(&format!("{o}-"))))
            })
            .collect();
    }
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    for (pod, container) in readiness::crashed_containers(s) {
        let mut lp = LogParams {
            container: Some(container.clone()),
            tail_lines: Some(20),
            previous: true,
            ..Default::default()
        };
        let log = match pods.logs(&pod, &lp).await {
            Ok(l) => Ok(l),
            Err(_) => {
                lp.previous = false;
                pods.logs(&pod, &lp).await
            }
        };
        if let Ok(log) = log {
            s.logs.insert(format!("{pod}/{container}"), log);
        }
    }
}

/// Polls until everything labelled `w.selector` in `w.namespace` is ready; the error explains why
/// not. With `w.require_some`, also waits for the first workload to appear (a chart's workloads
/// carry the label devenv expects, or an operator creates them after its own release is ready).
async fn wait_ready(client: &Client, t: &KubeTarget, w: &Workloads, timeout: Duration) -> Result<()> {
    let (what, ns, selector) = (w.what.as_str(), w.namespace.as_str(), w.selector.as_str());
    let started = Instant::now();
    loop {
        let mut s = snapshot(client, ns, selector, t).await?;
        let verdict = readiness::verdict(&s);
        let out_of_time = started.elapsed() >= timeout;
        let none =
            s.deployments.is_empty() && s.statefulsets.is_empty() && s.daemonsets.is_empty() && s.jobs.is_empty();
        if w.require_some && none {
            if out_of_time {
                return Err(readiness::nothing_labelled_error(w, timeout));
            }
            tokio::time::sleep(POLL.min(timeout.saturating_sub(started.elapsed()))).await;
            continue;
        }
        match verdict {
            Verdict::Ready => return Ok(()),
            Verdict::Failed(_) => {}
            Verdict::Waiting(_) if !out_of_time => {
                tokio::time::sleep(POLL.min(timeout.saturating_sub(started.elapsed()))).await;
                continue;
            }
            Verdict::Waiting(_) => {}
        }
        explainers(client, ns, &mut s).await;
        return Err(readiness::not_ready_error(what, ns, timeout, &s));
    }
}

/// devenv's own objects, written as JSON and typed by k8s-openapi. In debug builds (every test)
/// the typed object must serialize back to the same JSON: a misspelt or misplaced field, which
/// the API server would drop without a word, fails loudly instead.
fn parse<T: serde::de::DeserializeOwned + serde::Serialize>(v: serde_json::Value) -> T {
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

/// The release helm stored in one of its Secrets (`sh.helm.release.v1.<name>.v<revision>`): the
/// Secret's `release` value is base64 of gzip of the release's JSON.
pub fn release_from_secret(secret: &Secret) -> Option<(u64, ReleaseInfo)> {
    use std::io::Read;
    let labels = secret.metadata.labels.as_ref()?;
    let revision: u64 = labels.get("version")?.parse().ok()?;
    let raw = &secret.data.as_ref()?.get("release")?.0;
    let decoded = crate::probe::scram::b64decode(std::str::from_utf8(raw).ok()?.trim())?;
    let mut json = Vec::new();
    if decoded.starts_with(&[0x1f, 0x8b]) {
        // Bounded: a release is at most a few MiB; a hostile Secret cannot inflate without end.
        flate2::read::GzDecoder::new(&decoded[..])
            .take(32 << 20)
            .read_to_end(&mut json)
            .ok()?;
    } else {
        json = decoded;
    }
    let r: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let chart = format!(
        "{}-{}",
        r.pointer("/chart/metadata/name")?.as_str()?,
        r.pointer("/chart/metadata/version")?.as_str()?
    );
    Some((
        revision,
        ReleaseInfo {
            name: r["name"]
                .as_str()
                .or(labels.get("name").map(String::as_str))?
                .to_string(),
            namespace: r["namespace"]
                .as_str()
                .or(secret.metadata.namespace.as_deref())?
                .to_string(),
            status: r
                .pointer("/info/status")
                .and_then(|s| s.as_str())
                .or(labels.get("status").map(String::as_str))?
                .to_string(),
            chart,
        },
    ))
}

/// Each release at its latest revision from its Secrets' metadata alone: helm labels them with
/// `name`, `status` and `version` (the revision); the chart is left empty.
pub fn releases_from_labels<'a>(
    metas: impl Iterator<Item = &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
) -> Vec<ReleaseInfo> {
    let mut latest: std::collections::BTreeMap<(String, String), (u64, ReleaseInfo)> = Default::default();
    for m in metas.filter(|m| m.name.as_deref().is_some_and(|n| n.starts_with("sh.helm.release.v1."))) {
        let labels = m.labels.clone().unwrap_or_default();
        let (Some(name), Some(status), Some(rev), Some(ns)) = (
            labels.get("name"),
            labels.get("status"),
            labels.get("version").and_then(|v| v.parse::<u64>().ok()),
            m.namespace.as_ref(),
        ) else {
            continue;
        };
        let key = (ns.clone(), name.clone());
        if latest.get(&key).is_none_or(|(have, _)| *have < rev) {
            let info = ReleaseInfo {
                name: name.clone(),
                namespace: ns.clone(),
                status: status.clone(),
                chart: String::new(),
            };
            latest.insert(key, (rev, info));
        }
    }
    latest.into_values().map(|(_, r)| r).collect()
}

/// Each release at its latest revision, as `helm list --all` has them.
pub fn releases_from_secrets(secrets: &[Secret]) -> Vec<ReleaseInfo> {
    let mut latest: std::collections::BTreeMap<(String, String), (u64, ReleaseInfo)> = Default::default();
    for s in secrets
        .iter()
        .filter(|s| s.type_.as_deref() == Some("helm.sh/release.v1"))
    {
        if let Some((rev, r)) = release_from_secret(s) {
            let key = (r.namespace.clone(), r.name.clone());
            if latest.get(&key).is_none_or(|(have, _)| *have < rev) {
                latest.insert(key, (rev, r));
            }
        }
    }
    latest.into_values().map(|(_, r)| r).collect()
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

impl Kube for KubeApi {
    fn records(&self, t: &KubeTarget, cancel: &Cancel) -> Result<Vec<(String, Applied)>> {
        block(t, cancel, |client| async move {
            let list = Api::<ConfigMap>::namespaced(client, RECORD_NAMESPACE)
                .list(&ListParams::default().labels(ENV_LABEL))
                .await
                .map_err(api("reading devenv's records", t))?;
            Ok(list
                .items
                .into_iter()
                .filter_map(|cm| {
                    let env = cm.metadata.labels.as_ref()?.get(ENV_LABEL)?.clone();
                    (cm.metadata.name.as_deref() == Some(configmap_name(&env).as_str())).then(|| {
                        (
                            env,
                            Applied {
                                entries: cm.data.unwrap_or_default().into_iter().collect(),
                            },
                        )
                    })
                })
                .collect())
        })
    }

    /// A JSON merge patch of one key: steps running at once never overwrite each other's keys.
    fn set_applied(&self, t: &KubeTarget, env: &str, key: &str, value: Option<&str>, cancel: &Cancel) -> Result<()> {
        block(t, cancel, |client| async move {
            let cms = Api::<ConfigMap>::namespaced(client, RECORD_NAMESPACE);
            let name = configmap_name(env);
            let err = api(
                &format!("writing `{key}` into devenv's record {RECORD_NAMESPACE}/{name}"),
                t,
            );
            let patch = serde_json::json!({"data": {key: value}});
            for _ in 0..3 {
                match cms.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(_) => return Ok(()),
                    Err(e) if code(&e) == Some(404) && value.is_none() => return Ok(()),
                    Err(e) if code(&e) == Some(404) => {
                        let cm: ConfigMap = parse(serde_json::json!({
                            "metadata": {"name": name, "namespace": RECORD_NAMESPACE,
                                         "labels": {"app.kubernetes.io/managed-by": "devenv", ENV_LABEL: env}},
                            "data": {key: value},
                        }));
                        match cms.create(&PostParams::default(), &cm).await {
                            Ok(_) => return Ok(()),
                            // Another step created it meanwhile: patch it.
                            Err(e) if code(&e) == Some(409) => continue,
                            Err(e) => return Err(err(e)),
                        }
                    }
                    Err(e) => return Err(err(e)),
                }
            }
            Err(Error::failed(
                format!("writing `{key}` into devenv's record {RECORD_NAMESPACE}/{name} kept conflicting"),
                "run `devenv up` again",
            ))
        })
    }

    fn wait_nodes_ready(&self, t: &KubeTarget, timeout: Duration, cancel: &Cancel) -> Result<()> {
        block(t, cancel, |client| async move {
            let nodes = Api::<Node>::all(client);
            let started = Instant::now();
            loop {
                // Right after create the API server may not answer yet: keep asking until the deadline.
                let not_ready: std::result::Result<Vec<String>, Error> = nodes
                    .list(&ListParams::default())
                    .await
                    .map_err(api("listing the nodes", t))
                    .map(|list| {
                        if list.items.is_empty() {
                            return vec!["no node has registered yet".to_string()];
                        }
                        list.items
                            .iter()
                            .filter_map(|n| {
                                let ready = n
                                    .status
                                    .as_ref()
                                    .and_then(|s| s.conditions.as_ref())
                                    .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
                                match ready {
                                    Some(c) if c.status == "True" => None,
                                    Some(c) => Some(format!(
                                        "{} ({})",
                                        n.metadata.name.as_deref().unwrap_or("?"),
                                        c.message.as_deref().or(c.reason.as_deref()).unwrap_or("not ready")
                                    )),
                                    None => Some(format!(
                                        "{} (no Ready condition yet)",
                                        n.metadata.name.as_deref().unwrap_or("?")
                                    )),
                                }
                            })
                            .collect()
                    });
                match not_ready {
                    Ok(v) if v.is_empty() => return Ok(()),
                    _ if started.elapsed() < timeout => tokio::time::sleep(POLL).await,
                    Ok(v) => {
                        return Err(Error::failed(
                            format!("node(s) not Ready after {}s: {}", timeout.as_secs(), v.join("; ")),
                            "`devenv doctor` checks disk, memory and inotify limits; `kubectl describe nodes` (with `devenv env`) says more",
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn server_version(&self, t: &KubeTarget, cancel: &Cancel) -> Result<String> {
        block(t, cancel, |client| async move {
            Ok(client
                .apiserver_version()
                .await
                .map_err(api("asking the API server its version", t))?
                .git_version)
        })
    }

    fn delete_applied(&self, t: &KubeTarget, env: &str, cancel: &Cancel) -> Result<()> {
        block(t, cancel, |client| async move {
            match Api::<ConfigMap>::namespaced(client, RECORD_NAMESPACE)
                .delete(&configmap_name(env), &DeleteParams::default())
                .await
            {
                Err(e) if code(&e) != Some(404) => Err(api("deleting devenv's record", t)(e)),
                _ => Ok(()),
            }
        })
    }

    fn wait_ready(&self, t: &KubeTarget, w: &Workloads, timeout: Duration, cancel: &Cancel) -> Result<()> {
        block(
            t,
            cancel,
            |client| async move { wait_ready(&client, t, w, timeout).await },
        )
    }

    fn create_smoke_namespace(&self, t: &KubeTarget, s: &SmokeSpec, cancel: &Cancel) -> Result<()> {
        block(t, cancel, |client| async move {
            let (ns, ..) = smoke_objects(s);
            Api::<Namespace>::all(client)
                .create(&PostParams::default(), &ns)
                .await
                .map_err(api(&format!("creating the smoke namespace {}", s.namespace), t))
                .map(|_| ())
        })
    }

    fn smoke_echo(&self, t: &KubeTarget, s: &SmokeSpec, timeout: Duration, cancel: &Cancel) -> Result<()> {
        block(t, cancel, |client| async move {
            let (_, deployment, service, ingress) = smoke_objects(s);
            let pp = PostParams::default();
            let err = |what: &str| api(&format!("creating the smoke {what} in namespace {}", s.namespace), t);
            Api::<Deployment>::namespaced(client.clone(), &s.namespace)
                .create(&pp, &deployment)
                .await
                .map_err(err("echo Deployment"))?;
            Api::<Service>::namespaced(client.clone(), &s.namespace)
                .create(&pp, &service)
                .await
                .map_err(err("echo Service"))?;
            // An ingress controller that has just been installed rejects Ingresses until its
            // admission webhook answers: retry with backoff until the deadline.
            let started = Instant::now();
            let ingresses = Api::<Ingress>::namespaced(client.clone(), &s.namespace);
            let mut backoff = Duration::from_millis(250);
            loop {
                match ingresses.create(&pp, &ingress).await {
                    Ok(_) => break,
                    Err(e) if is_webhook_race(&e) && started.elapsed() + backoff < timeout => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(4));
                    }
                    Err(e) => return Err(err("Ingress")(e)),
                }
            }
            wait_ready(
                &client,
                t,
                &Workloads {
                    what: "the smoke echo backend".to_string(),
                    namespace: s.namespace.clone(),
                    selector: "app.kubernetes.io/instance=devenv-smoke".to_string(),
                    require_some: true,
                },
                timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(1)),
            )
            .await
        })
    }

    fn smoke_job(
        &self,
        t: &KubeTarget,
        s: &SmokeSpec,
        targets: &[(String, u16)],
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<()> {
        block(t, cancel, |client| async move {
            Api::<Job>::namespaced(client.clone(), &s.namespace)
                .create(&PostParams::default(), &smoke_job_object(s, targets, timeout))
                .await
                .map_err(api(&format!("creating the DNS Job in namespace {}", s.namespace), t))?;
            wait_ready(
                &client,
                t,
                &Workloads {
                    what: "the in-cluster DNS check".to_string(),
                    namespace: s.namespace.clone(),
                    selector: "app.kubernetes.io/instance=devenv-smoke-dns".to_string(),
                    require_some: true,
                },
                timeout,
            )
            .await
        })
    }

    fn smoke_namespaces(&self, t: &KubeTarget, env: &str, cancel: &Cancel) -> Result<Vec<SmokeNamespace>> {
        block(t, cancel, |client| async move {
            let list = Api::<Namespace>::all(client)
                .list(&ListParams::default().labels(&format!("{SMOKE_LABEL}={env}")))
                .await
                .map_err(api("listing smoke namespaces", t))?;
            Ok(list
                .items
                .into_iter()
                .map(|n| {
                    let a = n.metadata.annotations.unwrap_or_default();
                    SmokeNamespace {
                        name: n.metadata.name.unwrap_or_default(),
                        owner: a.get(SMOKE_OWNER).cloned().unwrap_or_default(),
                        created: a.get(SMOKE_CREATED).and_then(|c| c.parse().ok()).unwrap_or(0),
                    }
                })
                .collect())
        })
    }

    fn ensure_volume(&self, t: &KubeTarget, v: &VolumeSpec, cancel: &Cancel) -> Result<()> {
        block(t, cancel, |client| async move {
            let (ns, pv, pvc) = volume_objects(v);
            let pp = PostParams::default();
            let exists = |r: std::result::Result<(), kube::Error>, what: &str| match r {
                Err(e) if code(&e) != Some(409) => Err(api(&format!("creating {what}"), t)(e)),
                _ => Ok(()),
            };
            exists(
                Api::<Namespace>::all(client.clone()).create(&pp, &ns).await.map(|_| ()),
                &format!("namespace {}", v.namespace),
            )?;
            let pvs = Api::<PersistentVolume>::all(client.clone());
            exists(
                pvs.create(&pp, &pv).await.map(|_| ()),
                &format!("PersistentVolume {}", v.name),
            )?;
            // A volume kept from before may still be bound to a claim devenv.yaml has renamed.
            if let Some(have) = pvs
                .get_opt(&v.name)
                .await
                .map_err(api(&format!("reading PersistentVolume {}", v.name), t))?
            {
                let bound = have.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
                if let Some(r) = bound
                    && (r.namespace.as_deref() != Some(v.namespace.as_str())
                        || r.name.as_deref() != Some(v.claim.as_str()))
                {
                    let (ns, claim) = (
                        r.namespace.clone().unwrap_or_default(),
                        r.name.clone().unwrap_or_default(),
                    );
                    return Err(Error::failed(
                        format!(
                            "PersistentVolume {} is bound to claim {ns}/{claim}, not to {}/{} as devenv.yaml now says",
                            v.name, v.namespace, v.claim
                        ),
                        format!(
                            "free it (the files stay): `kubectl delete pvc -n {ns} {claim}` then `kubectl delete pv {}`, and run `devenv up` again",
                            v.name
                        ),
                    ));
                }
            }
            exists(
                Api::<PersistentVolumeClaim>::namespaced(client, &v.namespace)
                    .create(&pp, &pvc)
                    .await
                    .map(|_| ()),
                &format!("PersistentVolumeClaim {}/{}", v.namespace, v.claim),
            )
        })
    }

    fn delete_namespace(&self, t: &KubeTarget, name: &str, cancel: &Cancel) -> Result<()> {
        block(t, cancel, |client| async move {
            match Api::<Namespace>::all(client)
                .delete(name, &DeleteParams::background())
                .await
            {
                Err(e) if code(&e) != Some(404) => Err(api(&format!("deleting namespace {name}"), t)(e)),
                _ => Ok(()),
            }
        })
    }

    fn delete_volume(&self, t: &KubeTarget, pv: &str, namespace: &str, claim: &str, cancel: &Cancel) -> Result<()> {
        block(t, cancel, |client| async move {
            let gone = |r: std::result::Result<(), kube::Error>, what: String| match r {
                Err(e) if code(&e) != Some(404) => Err(api(&format!("deleting {what}"), t)(e)),
                _ => Ok(()),
            };
            if !namespace.is_empty() && !claim.is_empty() {
                gone(
                    Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace)
                        .delete(claim, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                    format!("PersistentVolumeClaim {namespace}/{claim}"),
                )?;
            }
            gone(
                Api::<PersistentVolume>::all(client)
                    .delete(pv, &DeleteParams::default())
                    .await
                    .map(|_| ()),
                format!("PersistentVolume {pv}"),
            )
        })
    }

    fn helm_releases(&self, t: &KubeTarget, charts: bool, cancel: &Cancel) -> Result<Option<Vec<ReleaseInfo>>> {
        // helm keeps releases in Secrets unless HELM_DRIVER says otherwise.
        if std::env::var("HELM_DRIVER").is_ok_and(|d| !d.is_empty() && d != "secret" && d != "secrets") {
            return Ok(None);
        }
        block(t, cancel, |client| async move {
            let lp = ListParams::default().labels("owner=helm,status!=superseded");
            let secrets = Api::<Secret>::all(client);
            let listed = if charts {
                secrets.list(&lp).await.map(|l| releases_from_secrets(&l.items))
            } else {
                secrets
                    .list_metadata(&lp)
                    .await
                    .map(|l| releases_from_labels(l.items.iter().map(|m| &m.metadata)))
            };
            match listed {
                Ok(releases) => Ok(Some(releases)),
                // Not allowed to read Secrets cluster-wide: `helm list` may still be.
                Err(e) if matches!(code(&e), Some(401 | 403)) => Ok(None),
                Err(e) => Err(api("reading helm's releases", t)(e)),
            }
        })
    }

    fn node_metrics(&self, t: &KubeTarget, timeout: Duration, cancel: &Cancel) -> Result<()> {
        block(t, cancel, |client| async move {
            let ar = kube::core::ApiResource {
                group: "metrics.k8s.io".into(),
                version: "v1beta1".into(),
                api_version: "metrics.k8s.io/v1beta1".into(),
                kind: "NodeMetrics".into(),
                plural: "nodes".into(),
            };
            let nodes: Api<kube::core::DynamicObject> = Api::all_with(client, &ar);
            let started = Instant::now();
            let mut last;
            loop {
                // kube-rs retries a 503 itself, with backoff: each request gets the time left.
                let left = timeout
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(200));
                last = match tokio::time::timeout(left, nodes.list(&ListParams::default())).await {
                    Ok(Ok(list)) => {
                        if list
                            .items
                            .iter()
                            .any(|n| n.data.get("usage").is_some_and(|u| u.get("cpu").is_some()))
                        {
                            return Ok(());
                        }
                        "no node reports its usage yet".to_string()
                    }
                    Ok(Err(e)) => match &e {
                        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
                        other => other.to_string(),
                    },
                    Err(_) => "no answer".to_string(),
                };
                if started.elapsed() >= timeout {
                    return Err(Error::failed(
                        format!(
                            "the metrics API (metrics.k8s.io/v1beta1 nodes) gave no node's usage within {}s: {last}",
                            timeout.as_secs()
                        ),
                        "metrics-server needs a minute after it starts; `kubectl -n kube-system logs deploy/metrics-server` shows why it cannot scrape the kubelets",
                    ));
                }
                tokio::time::sleep(POLL.min(timeout.saturating_sub(started.elapsed()))).await;
            }
        })
    }

    fn smoke_shared(
        &self,
        t: &KubeTarget,
        s: &SmokeSpec,
        v: &VolumeSpec,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<()> {
        block(t, cancel, |client| async move {
            let jobs = Api::<Job>::namespaced(client.clone(), &v.namespace);
            let what = format!("the shared volume check (claim {}/{})", v.namespace, v.claim);
            let started = Instant::now();
            let run = async {
                let writer = shared_job_object(s, v, "write", None, timeout);
                jobs.create(&PostParams::default(), &writer)
                    .await
                    .map_err(api(&format!("creating {what}'s writer Job"), t))?;
                let w = format!("app.kubernetes.io/instance=devenv-shared-write-{}", s.token);
                wait_ready(
                    &client,
                    t,
                    &Workloads {
                        what: format!("{what}: the writer"),
                        namespace: v.namespace.clone(),
                        selector: w.clone(),
                        require_some: true,
                    },
                    timeout,
                )
                .await?;
                // The reader goes to another node when there is one: the files are the host's.
                let pods = Api::<Pod>::namespaced(client.clone(), &v.namespace)
                    .list(&ListParams::default().labels(&w))
                    .await
                    .map_err(api(&format!("listing {what}'s writer pod"), t))?;
                let node = pods.items.iter().find_map(|p| p.spec.as_ref()?.node_name.clone());
                let reader = shared_job_object(s, v, "read", node.as_deref(), timeout);
                jobs.create(&PostParams::default(), &reader)
                    .await
                    .map_err(api(&format!("creating {what}'s reader Job"), t))?;
                let r = format!("app.kubernetes.io/instance=devenv-shared-read-{}", s.token);
                let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
                wait_ready(
                    &client,
                    t,
                    &Workloads {
                        what: format!("{what}: the reader (it did not find the writer's file)"),
                        namespace: v.namespace.clone(),
                        selector: r.clone(),
                        require_some: true,
                    },
                    left,
                )
                .await
            };
            let result = run.await;
            for role in ["write", "read"] {
                let _ = jobs
                    .delete(
                        &format!("devenv-shared-{role}-{}", s.token),
                        &DeleteParams::background(),
                    )
                    .await;
            }
            result
        })
    }
}

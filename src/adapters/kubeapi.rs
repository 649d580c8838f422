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
    Applied, DATA_STORAGE_CLASS, Kube, KubeTarget, SMOKE_CREATED, SMOKE_LABEL, SMOKE_OWNER, SmokeNamespace, SmokeSpec,
    VolumeSpec,
};
use futures_util::future::{Either, select, try_join5};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
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
    rt.block_on(async {
        let work = async { f(connect(t).await?).await };
        let watch = async {
            while !cancel.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        match select(std::pin::pin!(work), std::pin::pin!(watch)).await {
            Either::Left((r, _)) => r,
            Either::Right(_) => Err(cancel.error()),
        }
    })
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

/// Polls until everything labelled `selector` in `ns` is ready; the error explains why not.
async fn wait_ready(
    client: &Client,
    t: &KubeTarget,
    what: &str,
    ns: &str,
    selector: &str,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let mut s = snapshot(client, ns, selector, t).await?;
        let verdict = readiness::verdict(&s);
        let out_of_time = started.elapsed() >= timeout;
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

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("devenv's own objects are valid")
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
    let ingress = parse(serde_json::json!({
        "metadata": {"name": "echo", "namespace": s.namespace, "labels": labels},
        "spec": {"rules": [{"host": s.host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "echo", "port": {"number": 80}}},
        }]}}]},
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
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": DATA_STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "hostPath": {"path": v.node_path, "type": "DirectoryOrCreate"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": v.namespace, "name": v.claim},
        },
    }));
    let pvc = parse(serde_json::json!({
        "metadata": {"name": v.claim, "namespace": v.namespace, "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": DATA_STORAGE_CLASS,
            "volumeName": v.name,
            "resources": {"requests": {"storage": v.size}},
        },
    }));
    (ns, pv, pvc)
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
    fn get_applied(&self, t: &KubeTarget, env: &str, cancel: &Cancel) -> Result<Option<Applied>> {
        block(t, cancel, |client| async move {
            let cm = Api::<ConfigMap>::namespaced(client, RECORD_NAMESPACE)
                .get_opt(&configmap_name(env))
                .await
                .map_err(api("reading devenv's record", t))?;
            Ok(cm.map(|cm| Applied {
                entries: cm.data.unwrap_or_default().into_iter().collect(),
            }))
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
                                         "labels": {"app.kubernetes.io/managed-by": "devenv", "devenv.dev/environment": env}},
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

    fn wait_release_ready(
        &self,
        t: &KubeTarget,
        release: &str,
        namespace: &str,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<()> {
        block(t, cancel, |client| async move {
            wait_ready(
                &client,
                t,
                release,
                namespace,
                &format!("app.kubernetes.io/instance={release}"),
                timeout,
            )
            .await
        })
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
                "the smoke echo backend",
                &s.namespace,
                "app.kubernetes.io/instance=devenv-smoke",
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
                "the in-cluster DNS check",
                &s.namespace,
                "app.kubernetes.io/instance=devenv-smoke-dns",
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
            exists(
                Api::<PersistentVolume>::all(client.clone())
                    .create(&pp, &pv)
                    .await
                    .map(|_| ()),
                &format!("PersistentVolume {}", v.name),
            )?;
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
}

//! The smoke run's objects in the cluster: its namespace, the echo backend behind an Ingress
//! (through the admission-webhook race), the in-cluster DNS Job, the shared volume's writer and
//! reader, the metrics API, and the sweep of namespaces earlier runs left.

use super::client::{POLL, api, block, code, is_webhook_race};
use super::objects::{shared_job_object, smoke_job_object, smoke_objects};
use super::wait::until_ready;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::world::KubeTarget;
use crate::world::{SMOKE_CREATED, SMOKE_LABEL, SMOKE_OWNER, SmokeNamespace, SmokeSpec, VolumeSpec, Workloads};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::time::{Duration, Instant};

pub fn create_smoke_namespace(t: &KubeTarget, s: &SmokeSpec, cancel: &Cancel) -> Result<()> {
    block(t, cancel, |client| async move {
        let (ns, ..) = smoke_objects(s);
        Api::<Namespace>::all(client)
            .create(&PostParams::default(), &ns)
            .await
            .map_err(api(&format!("creating the smoke namespace {}", s.namespace), t))
            .map(|_| ())
    })
}

pub fn smoke_echo(t: &KubeTarget, s: &SmokeSpec, timeout: Duration, cancel: &Cancel) -> Result<()> {
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
        until_ready(
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

pub fn smoke_job(
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
        until_ready(
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

pub fn smoke_namespaces(t: &KubeTarget, env: &str, cancel: &Cancel) -> Result<Vec<SmokeNamespace>> {
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

pub fn delete_namespace(t: &KubeTarget, name: &str, cancel: &Cancel) -> Result<()> {
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

pub fn node_metrics(t: &KubeTarget, timeout: Duration, cancel: &Cancel) -> Result<()> {
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

pub fn smoke_shared(t: &KubeTarget, s: &SmokeSpec, v: &VolumeSpec, timeout: Duration, cancel: &Cancel) -> Result<()> {
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
            until_ready(
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
            until_ready(
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

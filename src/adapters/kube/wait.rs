//! Readiness through the API: the nodes, and the workloads a label selects (polled until their
//! timeout; the error explains, with `crate::readiness`).

use super::client::{POLL, api, block};
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::readiness::{self, Snapshot, Verdict};
use crate::world::KubeTarget;
use crate::world::Workloads;
use futures_util::future::try_join5;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The workloads, pods, events and crash logs of everything labelled `selector` in `ns`.
pub(super) async fn snapshot(client: &Client, ns: &str, selector: &str, t: &KubeTarget) -> Result<Snapshot> {
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
pub(super) async fn explainers(client: &Client, ns: &str, s: &mut Snapshot) {
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
pub(super) async fn until_ready(client: &Client, t: &KubeTarget, w: &Workloads, timeout: Duration) -> Result<()> {
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

pub fn wait_ready(t: &KubeTarget, w: &Workloads, timeout: Duration, cancel: &Cancel) -> Result<()> {
    block(
        t,
        cancel,
        |client| async move { until_ready(&client, t, w, timeout).await },
    )
}

pub fn wait_nodes_ready(t: &KubeTarget, timeout: Duration, cancel: &Cancel) -> Result<()> {
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

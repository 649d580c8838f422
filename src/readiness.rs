//! Is a release ready, and if not, why not: pure functions over the Kubernetes objects of one
//! release (its workloads, their pods, recent events, the last log lines of crashing containers).
//! The real adapter (adapters/kubeapi.rs) fetches them through the API; the simulated world builds
//! them; both explain a stuck component in the same words.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use std::collections::BTreeMap;

/// Everything one readiness check looks at.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub deployments: Vec<Deployment>,
    pub statefulsets: Vec<StatefulSet>,
    pub daemonsets: Vec<DaemonSet>,
    pub jobs: Vec<Job>,
    pub pods: Vec<Pod>,
    pub events: Vec<Event>,
    /// `pod/container` -> the last lines its crashed container printed.
    pub logs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    /// Not yet: each line is one workload and how far it got (`deployment/x: 0/1 ready`).
    Waiting(Vec<String>),
    /// Will not get better by waiting (a Job that failed).
    Failed(Vec<String>),
}

fn name(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or("?")
}

fn stale(generation: Option<i64>, observed: Option<i64>) -> bool {
    matches!((generation, observed), (Some(g), Some(o)) if o < g) || (generation.is_some() && observed.is_none())
}

/// Readiness as kubectl rollout status and kstatus judge it.
pub fn verdict(s: &Snapshot) -> Verdict {
    let mut waiting = Vec::new();
    let mut failed = Vec::new();
    for d in &s.deployments {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = d.status.clone().unwrap_or_default();
        let (ready, updated, available) = (
            st.ready_replicas.unwrap_or(0),
            st.updated_replicas.unwrap_or(0),
            st.available_replicas.unwrap_or(0),
        );
        if stale(d.metadata.generation, st.observed_generation) || updated < want || available < want || ready < want {
            waiting.push(format!("deployment/{}: {ready}/{want} ready", name(&d.metadata)));
        }
    }
    for ss in &s.statefulsets {
        let want = ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = ss.status.clone().unwrap_or_default();
        let ready = st.ready_replicas.unwrap_or(0);
        let rolling = matches!((&st.current_revision, &st.update_revision), (Some(c), Some(u)) if c != u);
        if stale(ss.metadata.generation, st.observed_generation) || ready < want || rolling {
            waiting.push(format!(
                "statefulset/{}: {ready}/{want} ready{}",
                name(&ss.metadata),
                if rolling { ", update rolling out" } else { "" }
            ));
        }
    }
    for ds in &s.daemonsets {
        let st = ds.status.clone().unwrap_or_default();
        let (want, ready, updated) = (
            st.desired_number_scheduled,
            st.number_ready,
            st.updated_number_scheduled.unwrap_or(0),
        );
        if stale(ds.metadata.generation, st.observed_generation) || ready < want || updated < want {
            waiting.push(format!("daemonset/{}: {ready}/{want} ready", name(&ds.metadata)));
        }
    }
    for j in &s.jobs {
        let want = j.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
        let st = j.status.clone().unwrap_or_default();
        let done = st.succeeded.unwrap_or(0);
        let failed_condition = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed" && c.status == "True");
        if let Some(c) = failed_condition {
            failed.push(format!(
                "job/{}: failed ({})",
                name(&j.metadata),
                c.message
                    .as_deref()
                    .or(c.reason.as_deref())
                    .unwrap_or("no reason given")
            ));
        } else if done < want {
            waiting.push(format!("job/{}: {done}/{want} completed", name(&j.metadata)));
        }
    }
    if !failed.is_empty() {
        failed.extend(waiting);
        Verdict::Failed(failed)
    } else if waiting.is_empty() {
        Verdict::Ready
    } else {
        Verdict::Waiting(waiting)
    }
}

fn pod_ready(p: &Pod) -> bool {
    let st = p.status.as_ref();
    st.and_then(|s| s.phase.as_deref()) == Some("Succeeded")
        || st
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Containers whose last lines are worth fetching: those crashing or exited with an error.
pub fn crashed_containers(s: &Snapshot) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in s.pods.iter().filter(|p| !pod_ready(p)) {
        for c in statuses(p) {
            let crashing = c
                .state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                == Some("CrashLoopBackOff");
            let errored = c
                .state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0);
            if crashing || errored {
                out.push((name(&p.metadata).to_string(), c.name.clone()));
            }
        }
    }
    out
}

fn statuses(p: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let st = p.status.as_ref();
    st.and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(st.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten())
}

fn image_of<'a>(p: &'a Pod, container: &'a ContainerStatus) -> &'a str {
    p.spec
        .as_ref()
        .and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == container.name)
        })
        .and_then(|c| c.image.as_deref())
        .unwrap_or(&container.image)
}

/// Why the pods are not ready, one line each (indented lines carry log output).
pub fn explain(s: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    if s.pods.is_empty() && !matches!(verdict(s), Verdict::Ready) {
        lines.push("no pod was created yet (check the Warning events below, or a ReplicaSet quota)".into());
    }
    for p in s.pods.iter().filter(|p| !pod_ready(p)) {
        let pod = name(&p.metadata);
        let st = p.status.clone().unwrap_or_default();
        let phase = st.phase.as_deref().unwrap_or("Unknown");
        if let Some(c) = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        {
            lines.push(format!(
                "pod {pod} ({phase}) cannot be scheduled: {}",
                c.message
                    .as_deref()
                    .or(c.reason.as_deref())
                    .unwrap_or("no reason given")
            ));
            continue;
        }
        let mut said = false;
        for c in statuses(p) {
            let state = c.state.clone().unwrap_or_default();
            if let Some(w) = &state.waiting {
                let reason = w.reason.as_deref().unwrap_or("waiting");
                if reason == "ContainerCreating" || reason == "PodInitializing" {
                    continue;
                }
                let mut line = format!("pod {pod} ({phase}): container {} is {reason}", c.name);
                if reason.contains("ImagePull") || reason == "ErrImageNeverPull" || reason == "InvalidImageName" {
                    line.push_str(&format!(" for image {}", image_of(p, c)));
                }
                if let Some(m) = w.message.as_deref().filter(|m| !m.is_empty()) {
                    line.push_str(&format!(": {}", m.trim()));
                }
                if reason == "CrashLoopBackOff" {
                    line.push_str(&format!(" ({} restarts)", c.restart_count));
                }
                lines.push(line);
                said = true;
            } else if let Some(t) = state.terminated.as_ref().filter(|t| t.exit_code != 0) {
                lines.push(format!(
                    "pod {pod} ({phase}): container {} exited with code {}{}",
                    c.name,
                    t.exit_code,
                    t.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                ));
                said = true;
            } else if state.running.is_some() && !c.ready {
                lines.push(format!(
                    "pod {pod} ({phase}): container {} is running but not ready (its readiness probe fails)",
                    c.name
                ));
                said = true;
            }
            if let Some(log) = s.logs.get(&format!("{pod}/{}", c.name)) {
                let tail: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
                for l in &tail[tail.len().saturating_sub(5)..] {
                    lines.push(format!("    | {l}"));
                }
            }
        }
        if !said {
            lines.push(format!(
                "pod {pod} is {phase}{}",
                st.message.map(|m| format!(": {m}")).unwrap_or_default()
            ));
        }
    }
    let warnings: Vec<&Event> = s
        .events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect();
    for e in &warnings[warnings.len().saturating_sub(5)..] {
        lines.push(format!(
            "event {} {}/{}: {}",
            e.reason.as_deref().unwrap_or("Warning"),
            e.involved_object.kind.as_deref().unwrap_or("object").to_lowercase(),
            e.involved_object.name.as_deref().unwrap_or("?"),
            e.message.as_deref().unwrap_or("").trim()
        ));
    }
    lines
}

/// The error for a release that is not ready in time (or cannot become ready).
pub fn not_ready_error(
    release: &str,
    namespace: &str,
    waited: std::time::Duration,
    s: &Snapshot,
) -> crate::error::Error {
    let (what, mut lines) = match verdict(s) {
        Verdict::Failed(l) => ("failed".to_string(), l),
        Verdict::Waiting(l) => (format!("is not ready after {}s", waited.as_secs()), l),
        Verdict::Ready => ("is not ready".to_string(), vec![]),
    };
    lines.extend(explain(s));
    let first_reason = lines
        .iter()
        .find(|l| l.starts_with("pod ") || l.starts_with("job/"))
        .cloned()
        .unwrap_or_default();
    let help = if first_reason.contains("ImagePull") {
        "the image cannot be pulled: check its name and tag in versions.yaml, or load it with `devenv load IMAGE`"
            .to_string()
    } else if first_reason.contains("cannot be scheduled") {
        "the node lacks room: lower the requests in helm-values/, or give Docker more CPU and memory (`devenv doctor`)"
            .to_string()
    } else if lines.iter().any(|l| l.contains("Permission denied")) {
        format!(
            "the container may not write its volume's directory: for a hostPath volume the directory's own owner and mode decide (no fsGroup change); `devenv up` makes devenv's data directories writable, and `devenv status` names the claim of {release}"
        )
    } else if first_reason.contains("hostPath type check failed") {
        "the volume's directory is missing on the node: `devenv up` makes it again".to_string()
    } else if first_reason.contains("CrashLoopBackOff") || first_reason.contains("exited with code") {
        format!("the container crashes: its last lines are above; check helm-values/{release}.yaml")
    } else {
        format!(
            "raise the wait with `devenv up --timeout 10m`, or look closer: kubectl get pods -n {namespace} (with `devenv env`)"
        )
    };
    crate::error::Error::failed(
        format!("{release} (namespace {namespace}) {what}:\n  {}", lines.join("\n  ")),
        help,
    )
}

/// A chart known to make workloads has none labelled as devenv expects: waiting for nothing
/// would call it ready at once, so this is a failure that names the selector.
pub fn nothing_labelled_error(w: &crate::world::Workloads, waited: std::time::Duration) -> crate::error::Error {
    let (what, ns, selector) = (&w.what, &w.namespace, &w.selector);
    crate::error::Error::failed(
        format!(
            "{what} (namespace {ns}) did not appear within {}s: no Deployment, StatefulSet, DaemonSet or Job is labelled {selector}",
            waited.as_secs()
        ),
        format!(
            "`kubectl -n {ns} get all --show-labels` (with `eval \"$(devenv env)\"`) shows what is there and how it is labelled; an operator's log says why it made nothing"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(v: serde_json::Value) -> Snapshot {
        serde_json::from_value::<SnapshotJson>(v).unwrap().into()
    }

    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct SnapshotJson {
        deployments: Vec<Deployment>,
        statefulsets: Vec<StatefulSet>,
        pods: Vec<Pod>,
        events: Vec<Event>,
        jobs: Vec<Job>,
        logs: BTreeMap<String, String>,
    }

    impl From<SnapshotJson> for Snapshot {
        fn from(j: SnapshotJson) -> Self {
            Snapshot {
                deployments: j.deployments,
                statefulsets: j.statefulsets,
                pods: j.pods,
                events: j.events,
                jobs: j.jobs,
                logs: j.logs,
                ..Default::default()
            }
        }
    }

    #[test]
    fn an_image_pull_failure_names_the_pod_the_image_and_the_reason() {
        let s = from(serde_json::json!({
            "deployments": [{"metadata": {"name": "web", "generation": 1}, "spec": {"replicas": 1, "selector": {}, "template": {}},
                              "status": {"observedGeneration": 1, "replicas": 1, "unavailableReplicas": 1}}],
            "pods": [{"metadata": {"name": "web-7d9f-abcde"},
                      "spec": {"containers": [{"name": "web", "image": "example/web:nope"}]},
                      "status": {"phase": "Pending", "containerStatuses": [{"name": "web", "image": "example/web:nope", "imageID": "", "ready": false, "restartCount": 0,
                         "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"example/web:nope\""}}}]}}],
            "events": [{"metadata": {"name": "e1"}, "type": "Warning", "reason": "Failed", "message": "Failed to pull image \"example/web:nope\": not found",
                        "involvedObject": {"kind": "Pod", "name": "web-7d9f-abcde"}}]
        }));
        assert_eq!(verdict(&s), Verdict::Waiting(vec!["deployment/web: 0/1 ready".into()]));
        let err = not_ready_error("web", "apps", std::time::Duration::from_secs(90), &s);
        let e = err.to_string();
        assert!(
            e.contains("pod web-7d9f-abcde (Pending): container web is ImagePullBackOff for image example/web:nope"),
            "{e}"
        );
        assert!(
            e.contains("event Failed pod/web-7d9f-abcde: Failed to pull image"),
            "{e}"
        );
        assert!(e.contains("not ready after 90s"), "{e}");
        assert!(err.help().unwrap().contains("devenv load"), "{err:?}");
    }

    #[test]
    fn a_crash_loop_shows_the_last_log_lines_and_scheduling_failures_their_message() {
        let s = from(serde_json::json!({
            "statefulsets": [{"metadata": {"name": "postgresql", "generation": 2}, "spec": {"replicas": 1, "selector": {}, "serviceName": "x", "template": {}},
                              "status": {"observedGeneration": 2, "replicas": 1, "readyReplicas": 0}}],
            "pods": [
              {"metadata": {"name": "postgresql-0"}, "status": {"phase": "Running", "containerStatuses": [{"name": "postgres", "image": "postgres:18.6", "imageID": "", "ready": false, "restartCount": 4,
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}}]}},
              {"metadata": {"name": "postgresql-1"}, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient memory."}]}}
            ],
            "logs": {"postgresql-0/postgres": "line1\nline2\nline3\nline4\nline5\nFATAL: data directory has wrong ownership\n"}
        }));
        assert_eq!(
            crashed_containers(&s),
            vec![("postgresql-0".to_string(), "postgres".to_string())]
        );
        let lines = explain(&s);
        assert!(lines.contains(&"pod postgresql-0 (Running): container postgres is CrashLoopBackOff: back-off 40s restarting failed container (4 restarts)".to_string()), "{lines:?}");
        assert!(lines.contains(&"    | FATAL: data directory has wrong ownership".to_string()));
        assert!(!lines.contains(&"    | line1".to_string()), "only the last five lines");
        assert!(
            lines.contains(
                &"pod postgresql-1 (Pending) cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory."
                    .to_string()
            )
        );
    }

    #[test]
    fn ready_workloads_and_a_failed_job() {
        let ok = from(serde_json::json!({
            "deployments": [{"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 2, "selector": {}, "template": {}},
                              "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}}],
            "jobs": [{"metadata": {"name": "migrate"}, "status": {"succeeded": 1}}]
        }));
        assert_eq!(verdict(&ok), Verdict::Ready);
        let stale = from(serde_json::json!({
            "deployments": [{"metadata": {"name": "web", "generation": 4}, "spec": {"replicas": 2, "selector": {}, "template": {}},
                              "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}}]
        }));
        assert!(
            matches!(verdict(&stale), Verdict::Waiting(_)),
            "a new generation not yet observed is not ready"
        );
        let failed = from(serde_json::json!({
            "jobs": [{"metadata": {"name": "admission-create"}, "status": {"failed": 6, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}]
        }));
        assert_eq!(
            verdict(&failed),
            Verdict::Failed(vec![
                "job/admission-create: failed (Job has reached the specified backoff limit)".into()
            ])
        );
    }
}

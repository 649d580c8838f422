//! A small Kubernetes API server for tests: plain HTTP on 127.0.0.1, JSON objects kept in memory,
//! for the resources devenv uses (namespaces, nodes, pods and their logs, events, configmaps,
//! services, deployments, statefulsets, daemonsets, jobs, ingresses). It speaks the real protocol
//! closely enough for kube-rs and for real `kubectl get` (discovery, server-side Tables), which
//! tests/kube_api.rs checks. (Also persistent volumes and their claims.) It runs no controllers unless asked: then created Deployments and Jobs
//! report themselves ready/complete at once. Everything it serves is made up by the test.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// (group/version path prefix, plural, kind, namespaced)
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("api/v1", "namespaces", "Namespace", false),
    ("api/v1", "nodes", "Node", false),
    ("api/v1", "pods", "Pod", true),
    ("api/v1", "events", "Event", true),
    ("api/v1", "configmaps", "ConfigMap", true),
    ("api/v1", "services", "Service", true),
    ("api/v1", "persistentvolumes", "PersistentVolume", false),
    ("api/v1", "persistentvolumeclaims", "PersistentVolumeClaim", true),
    ("api/v1", "secrets", "Secret", true),
    ("apis/apps/v1", "deployments", "Deployment", true),
    ("apis/apps/v1", "statefulsets", "StatefulSet", true),
    ("apis/apps/v1", "daemonsets", "DaemonSet", true),
    ("apis/batch/v1", "jobs", "Job", true),
    ("apis/networking.k8s.io/v1", "ingresses", "Ingress", true),
    // metrics-server's aggregated API; kept in the store under the plural "nodemetrics".
    ("apis/metrics.k8s.io/v1beta1", "nodes", "NodeMetrics", false),
];

/// The store's key for a resource: metrics.k8s.io's "nodes" are not the core "nodes".
fn store_plural(prefix: &str, plural: &str) -> String {
    if prefix.starts_with("apis/metrics.k8s.io") {
        "nodemetrics".into()
    } else {
        plural.into()
    }
}

#[derive(Default)]
pub struct Store {
    /// (plural, namespace or "", name) -> object
    pub objects: BTreeMap<(String, String, String), Value>,
    /// (namespace, pod, container) -> log text
    pub logs: BTreeMap<(String, String, String), String>,
    /// "METHOD path?query", in order.
    pub requests: Vec<String>,
    /// Ingress creates still to reject the way a not-yet-ready admission webhook does.
    pub webhook_failures: u32,
    /// Created Deployments become ready and Jobs complete at once.
    pub controllers: bool,
    /// Answer everything with this non-JSON body (a proxy's error page, say).
    pub garbage: Option<String>,
    /// Resources (plurals) the caller may not list: 403 Forbidden.
    pub forbidden: Vec<String>,
    /// Requests to the metrics API still to answer 503, the way an aggregated API does before
    /// metrics-server is ready; u32::MAX: always.
    pub metrics_unavailable: u32,
    /// (namespace, claim) -> a real directory: a Job mounting that claim runs its containers'
    /// commands here, with real `sh` and `DIR` set to the directory, and completes or fails by
    /// their exit status; its pod lands on `job_node`.
    pub claim_dirs: BTreeMap<(String, String), std::path::PathBuf>,
    pub job_node: String,
    /// Lists answered with metadata only.
    pub metadata_lists: u32,
    rv: u64,
}

pub struct ApiServer {
    pub port: u16,
    pub store: Arc<Mutex<Store>>,
}

fn gv_of(prefix: &str) -> String {
    prefix
        .trim_start_matches("api/")
        .trim_start_matches("apis/")
        .to_string()
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn selector_matches(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let label = |k: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(|x| x.as_str())
                .map(String::from)
        };
        // The API's set-based grammar as far as devenv uses it: `k!=v`, `k=v` (or `k==v`), `k`
        // (has the label), `!k` (has not).
        if let Some((k, v)) = term.split_once("!=") {
            return label(k).as_deref() != Some(v);
        }
        if let Some((k, v)) = term.split_once('=') {
            return label(k).as_deref() == Some(v.trim_start_matches('='));
        }
        match term.strip_prefix('!') {
            Some(k) => label(k).is_none(),
            None => label(term).is_some(),
        }
    })
}

/// Runs one container's `command` with real processes, `DIR` set to `dir`; true when it exits 0.
pub fn run_container(container: &Value, dir: &std::path::Path) -> bool {
    let argv: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env("DIR", dir)
        .status()
        .unwrap()
        .success()
}

/// Runs a Job's containers for real when it mounts a claim that has a directory (see
/// `Store::claim_dirs`): Complete when every command exits 0, else Failed. Also adds its pod.
fn run_job(st: &mut Store, ns: &str, job: &mut Value) -> bool {
    let tmpl = job["spec"]["template"].clone();
    let claim = tmpl
        .pointer("/spec/volumes/0/persistentVolumeClaim/claimName")
        .and_then(|c| c.as_str());
    let Some(dir) = claim
        .and_then(|c| st.claim_dirs.get(&(ns.to_string(), c.to_string())))
        .cloned()
    else {
        return false;
    };
    let mut ok = true;
    for c in tmpl["spec"]["containers"].as_array().into_iter().flatten() {
        ok &= run_container(c, &dir);
    }
    job["status"] = if ok {
        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    } else {
        json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})
    };
    let name = format!("{}-x1", job["metadata"]["name"].as_str().unwrap());
    let pod = json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "labels": tmpl["metadata"]["labels"].clone()},
        "spec": {"nodeName": st.job_node, "containers": tmpl["spec"]["containers"].clone()},
        "status": {"phase": if ok {"Succeeded"} else {"Failed"}}});
    st.objects.insert(("pods".into(), ns.into(), name), pod);
    true
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ApiServer {
    pub fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let store = Arc::new(Mutex::new(Store::default()));
        let s = store.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s, port));
            }
        });
        ApiServer { port, store }
    }

    /// A kubeconfig whose current context is a production-looking cluster on a closed port:
    /// only a client that names `context` explicitly reaches this server.
    pub fn kubeconfig(&self, context: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\n- name: prod\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: {context}\n  context:\n    cluster: fake\n    user: fake\n- name: prod-admin\n  context:\n    cluster: prod\n    user: fake\ncurrent-context: prod-admin\nusers:\n- name: fake\n  user:\n    token: devenv-test-token\n",
            self.port
        )
    }

    /// Stores `obj` (its kind says where), as a controller or kubectl would have made it.
    pub fn put(&self, mut obj: Value) {
        let kind = obj["kind"].as_str().unwrap().to_string();
        let (prefix, plural, _, namespaced) = RESOURCES.iter().find(|r| r.2 == kind).unwrap();
        obj["apiVersion"] = json!(gv_of(prefix));
        let ns = if *namespaced {
            obj.pointer("/metadata/namespace")
                .and_then(|v| v.as_str())
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        if obj.pointer("/metadata/creationTimestamp").is_none() {
            obj["metadata"]["creationTimestamp"] = json!("2026-11-22T10:00:00Z");
        }
        let mut st = self.store.lock().unwrap();
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.objects.insert((store_plural(prefix, plural), ns, name), obj);
    }

    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.store
            .lock()
            .unwrap()
            .objects
            .get(&(plural.into(), ns.into(), name.into()))
            .cloned()
    }

    pub fn requests(&self) -> Vec<String> {
        self.store.lock().unwrap().requests.clone()
    }
}

fn serve(mut conn: TcpStream, store: &Arc<Mutex<Store>>, port: u16) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let accept = headers.get("accept").cloned().unwrap_or_default();
    let (code, content_type, text) = handle(store, &method, &target, &accept, &body, port);
    let reason = match code {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Error",
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn handle(
    store: &Arc<Mutex<Store>>,
    method: &str,
    target: &str,
    accept: &str,
    body: &[u8],
    port: u16,
) -> (u16, &'static str, String) {
    let mut st = store.lock().unwrap();
    st.requests.push(format!("{method} {target}"));
    if let Some(g) = &st.garbage {
        return (200, "text/html", g.clone());
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let q: BTreeMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let json_out = |(code, v): (u16, Value)| (code, "application/json", v.to_string());
    // Discovery.
    match segs.as_slice() {
        ["version"] => {
            return json_out((
                200,
                json!({"major": "1", "minor": "36", "gitVersion": "v1.36.4", "platform": "linux/amd64"}),
            ));
        }
        ["api"] => {
            return json_out((
                200,
                json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{port}")}]}),
            ));
        }
        ["apis"] => {
            let mut groups: Vec<Value> = Vec::new();
            for (prefix, ..) in RESOURCES.iter().filter(|r| r.0.starts_with("apis/")) {
                let gv = gv_of(prefix);
                let (group, version) = gv.split_once('/').unwrap();
                if !groups.iter().any(|g| g["name"] == group) {
                    let v = json!({"groupVersion": gv, "version": version});
                    groups.push(json!({"name": group, "versions": [v.clone()], "preferredVersion": v}));
                }
            }
            return json_out((
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            ));
        }
        _ => {}
    }
    let (prefix_len, prefix) = match segs.as_slice() {
        ["api", "v1", ..] => (2, "api/v1".to_string()),
        ["apis", g, v, ..] => (3, format!("apis/{g}/{v}")),
        _ => {
            return json_out(status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    let rest = &segs[prefix_len..];
    if rest.is_empty() {
        let resources: Vec<Value> = RESOURCES
            .iter()
            .filter(|r| r.0 == prefix)
            .map(|(_, plural, kind, namespaced)| {
                let mut verbs = vec!["create", "delete", "get", "list", "patch", "update", "watch"];
                if *plural == "events" {
                    verbs.retain(|v| *v != "patch");
                }
                json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind, "verbs": verbs})
            })
            .chain(
                (prefix == "api/v1")
                    .then(|| json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]})),
            )
            .collect();
        return json_out((
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv_of(&prefix), "resources": resources}),
        ));
    }
    // (plural, namespace, name, subresource)
    let (plural, ns, name, sub) = match rest {
        ["namespaces", ns, plural, name, sub] => (*plural, *ns, Some(*name), Some(*sub)),
        ["namespaces", ns, plural, name] => (*plural, *ns, Some(*name), None),
        ["namespaces", ns, plural] => (*plural, *ns, None, None),
        [plural, name] => (*plural, "", Some(*name), None),
        [plural] => (*plural, "", None, None),
        _ => return json_out(status(404, "NotFound", "no such path")),
    };
    let Some((_, _, kind, namespaced)) = RESOURCES.iter().find(|r| r.0 == prefix && r.1 == plural) else {
        return json_out(status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({plural})"),
        ));
    };
    let key_ns = if *namespaced { ns.to_string() } else { String::new() };
    let gv = gv_of(&prefix);
    let plural_key = store_plural(&prefix, plural);
    let plural = plural_key.as_str();
    if plural == "nodemetrics" && st.metrics_unavailable > 0 {
        if st.metrics_unavailable != u32::MAX {
            st.metrics_unavailable -= 1;
        }
        return json_out(status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ));
    }
    if method == "GET" && name.is_none() && st.forbidden.iter().any(|f| f == plural) {
        return json_out(status(
            403,
            "Forbidden",
            &format!(
                "{plural} is forbidden: User \"dev\" cannot list resource \"{plural}\" in API group \"\" at the cluster scope"
            ),
        ));
    }
    match (method, name, sub) {
        ("GET", Some(pod), Some("log")) => {
            let container = q.get("container").cloned().unwrap_or_default();
            let previous = q.get("previous").is_some_and(|p| p == "true");
            match st.logs.get(&(ns.to_string(), pod.to_string(), container.clone())) {
                Some(text) if previous => {
                    let tail: usize = q.get("tailLines").and_then(|t| t.parse().ok()).unwrap_or(usize::MAX);
                    let lines: Vec<&str> = text.lines().collect();
                    let out = lines[lines.len().saturating_sub(tail)..].join("\n");
                    (200, "text/plain", out)
                }
                _ => json_out(status(
                    400,
                    "BadRequest",
                    &format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
                )),
            }
        }
        ("GET", Some(n), None) => match st.objects.get(&(plural.into(), key_ns.clone(), n.into())) {
            Some(o) => json_out((200, o.clone())),
            None => json_out(status(404, "NotFound", &format!("{plural} \"{n}\" not found"))),
        },
        ("GET", None, None) => {
            let selector = q.get("labelSelector").cloned().unwrap_or_default();
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|((p, n, _), _)| p == plural && (ns.is_empty() || *n == key_ns))
                .map(|(_, o)| o.clone())
                .filter(|o| selector_matches(o, &selector))
                .collect();
            if accept.contains("as=Table") {
                return (200, "application/json", table(plural, &items).to_string());
            }
            if accept.contains("as=PartialObjectMetadataList") {
                // Metadata only (what `kubectl get --output name` and kube-rs's list_metadata ask for).
                st.metadata_lists += 1;
                let metas: Vec<Value> = items
                    .iter()
                    .map(|o| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()}))
                    .collect();
                let rv = st.rv.to_string();
                return json_out((
                    200,
                    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "items": metas}),
                ));
            }
            let rv = st.rv.to_string();
            json_out((
                200,
                json!({"kind": format!("{kind}List"), "apiVersion": gv, "metadata": {"resourceVersion": rv}, "items": items}),
            ))
        }
        ("POST", None, None) => {
            let mut obj: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return json_out(status(400, "BadRequest", &format!("invalid JSON: {e}"))),
            };
            if plural == "ingresses" && st.webhook_failures > 0 {
                st.webhook_failures -= 1;
                return json_out(status(
                    500,
                    "InternalError",
                    "Internal error occurred: failed calling webhook \"validate.nginx.ingress.kubernetes.io\": failed to call webhook: Post \"https://ingress-nginx-controller-admission.ingress-nginx.svc:443/networking/v1/ingresses?timeout=10s\": dial tcp 10.96.12.34:443: connect: connection refused",
                ));
            }
            let n = obj
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            if *namespaced
                && !st
                    .objects
                    .contains_key(&("namespaces".into(), String::new(), ns.into()))
                && ns != "kube-system"
            {
                return json_out(status(404, "NotFound", &format!("namespaces \"{ns}\" not found")));
            }
            let key = (plural.to_string(), key_ns.clone(), n.clone());
            if st.objects.contains_key(&key) {
                return json_out(status(
                    409,
                    "AlreadyExists",
                    &format!("{plural} \"{n}\" already exists"),
                ));
            }
            st.rv += 1;
            obj["kind"] = json!(kind);
            obj["apiVersion"] = json!(gv);
            obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            obj["metadata"]["uid"] = json!(format!("uid-{}", st.rv));
            obj["metadata"]["generation"] = json!(1);
            obj["metadata"]["creationTimestamp"] = json!("2026-11-22T10:00:00Z");
            if *namespaced {
                obj["metadata"]["namespace"] = json!(ns);
            }
            if plural == "jobs" && run_job(&mut st, ns, &mut obj) {
                // Ran for real.
            } else if st.controllers {
                let replicas = obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
                match plural {
                    "deployments" => {
                        obj["status"] = json!({"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas})
                    }
                    "jobs" => {
                        obj["status"] = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
                    }
                    _ => {}
                }
            }
            st.objects.insert(key, obj.clone());
            json_out((201, obj))
        }
        ("PATCH", Some(n), None) => {
            let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            st.rv += 1;
            let rv = st.rv;
            match st.objects.get_mut(&(plural.into(), key_ns.clone(), n.into())) {
                Some(o) => {
                    merge(o, &patch);
                    o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    json_out((200, o.clone()))
                }
                None => json_out(status(404, "NotFound", &format!("{plural} \"{n}\" not found"))),
            }
        }
        ("DELETE", Some(n), None) => match st.objects.remove(&(plural.into(), key_ns.clone(), n.into())) {
            Some(mut o) => {
                if plural == "namespaces" {
                    st.objects.retain(|(_, ons, _), _| ons != n);
                    o["status"] = json!({"phase": "Terminating"});
                }
                json_out((200, o))
            }
            None => json_out(status(404, "NotFound", &format!("{plural} \"{n}\" not found"))),
        },
        _ => json_out(status(405, "MethodNotAllowed", "not supported by the test API server")),
    }
}

/// The server-side Table kubectl asks for: pods get kubectl's usual columns.
fn table(plural: &str, items: &[Value]) -> Value {
    let col = |name: &str, ty: &str| json!({"name": name, "type": ty, "format": if name == "Name" {"name"} else {""}, "description": "", "priority": 0});
    let meta = |o: &Value| {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"],
                            "creationTimestamp": o["metadata"]["creationTimestamp"]}})
    };
    let (columns, rows): (Vec<Value>, Vec<Value>) = if plural == "pods" {
        let rows = items
            .iter()
            .map(|p| {
                let statuses = p.pointer("/status/containerStatuses").and_then(|c| c.as_array()).cloned().unwrap_or_default();
                let total = p.pointer("/spec/containers").and_then(|c| c.as_array()).map(|c| c.len()).unwrap_or(statuses.len());
                let ready = statuses.iter().filter(|c| c["ready"] == true).count();
                let restarts: i64 = statuses.iter().map(|c| c["restartCount"].as_i64().unwrap_or(0)).sum();
                let reason = statuses
                    .iter()
                    .find_map(|c| c.pointer("/state/waiting/reason").and_then(|r| r.as_str()))
                    .or_else(|| p.pointer("/status/phase").and_then(|r| r.as_str()))
                    .unwrap_or("Unknown");
                json!({"cells": [p["metadata"]["name"], format!("{ready}/{total}"), reason, restarts, "5m"], "object": meta(p)})
            })
            .collect();
        (
            vec![
                col("Name", "string"),
                col("Ready", "string"),
                col("Status", "string"),
                col("Restarts", "string"),
                col("Age", "string"),
            ],
            rows,
        )
    } else {
        (
            vec![col("Name", "string"), col("Age", "string")],
            items
                .iter()
                .map(|o| json!({"cells": [o["metadata"]["name"], "5m"], "object": meta(o)}))
                .collect(),
        )
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "1"}, "columnDefinitions": columns, "rows": rows})
}

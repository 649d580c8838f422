//! The real kube-rs adapter (src/adapters/kubeapi.rs) against a local HTTP server that speaks the
//! Kubernetes API (tests/apiserver/). No cluster is involved: the objects the server holds are made
//! up by each test. Real `kubectl` reads the same server, which shows the double speaks the real
//! protocol.

use crate::apiserver::ApiServer;
use crate::common::TempDir;
use devenv::adapters::kube::KubeApi;
use devenv::exec::Cancel;
use devenv::world::{Kube, KubeTarget, SmokeSpec};
use serde_json::json;
use std::time::{Duration, Instant};

struct Fixture {
    server: ApiServer,
    _dir: TempDir,
    target: KubeTarget,
}

fn fixture(tag: &str) -> Fixture {
    let server = ApiServer::start();
    let dir = TempDir::new(tag);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("kind-dev")).unwrap();
    Fixture {
        server,
        _dir: dir,
        target: KubeTarget {
            kubeconfig,
            context: "kind-dev".into(),
        },
    }
}

/// The release `web`'s workloads, as devenv waits for a project's own release.
fn web() -> devenv::world::Workloads {
    devenv::world::Workloads::release("web", "apps")
}

fn prometheus(selector: &str) -> devenv::world::Workloads {
    devenv::world::Workloads {
        what: "prometheus".into(),
        namespace: "monitoring".into(),
        selector: selector.into(),
        require_some: true,
    }
}

fn spec() -> SmokeSpec {
    SmokeSpec {
        env: "dev".into(),
        namespace: "devenv-smoke-0a1b2c".into(),
        token: "0a1b2c".into(),
        host: "0a1b2c.dev.devenv-smoke.localhost".into(),
        echo_image: "docker.io/hashicorp/http-echo:1.0.0".into(),
        probe_image: "docker.io/library/busybox:1.37.0".into(),
        ingress_class: Some("nginx".into()),
        owner: "laptop/4242".into(),
        created: 1_795_000_000,
    }
}

#[test]
fn the_record_is_written_key_by_key_read_back_and_removed_through_the_named_context() {
    let f = fixture("kapi-record");
    let k = KubeApi::default();
    let c = Cancel::new();
    assert_eq!(k.get_applied(&f.target, "dev", &c).unwrap(), None);
    // Steps write their keys at once; none overwrites another's.
    std::thread::scope(|s| {
        for key in ["cluster", "component.redis", "component.postgresql", "format"] {
            let (k, t, c) = (&k, &f.target, &c);
            s.spawn(move || k.set_applied(t, "dev", key, Some(&format!("v-{key}")), c).unwrap());
        }
    });
    let a = k.get_applied(&f.target, "dev", &c).unwrap().unwrap();
    assert_eq!(a.entries.len(), 4, "{a:?}");
    assert_eq!(a.entries["component.redis"], "v-component.redis");
    let cm = f.server.get("configmaps", "kube-system", "devenv-dev").unwrap();
    assert_eq!(cm["metadata"]["labels"]["app.kubernetes.io/managed-by"], "devenv");
    k.set_applied(&f.target, "dev", "component.redis", None, &c).unwrap();
    let a = k.get_applied(&f.target, "dev", &c).unwrap().unwrap();
    assert!(!a.entries.contains_key("component.redis"));
    assert_eq!(a.entries.len(), 3);
    // Another environment's record in the same cluster: both come back in one request, each
    // naming its environment, so neither environment takes the other's releases for its own.
    k.set_applied(&f.target, "shop", "component.redis", Some("v-shop"), &c)
        .unwrap();
    let before = f.server.requests().len();
    let mut records = k.records(&f.target, &c).unwrap();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(f.server.requests().len(), before + 1);
    assert_eq!(
        records
            .iter()
            .map(|(e, a)| (e.as_str(), a.entries.len()))
            .collect::<Vec<_>>(),
        [("dev", 3), ("shop", 1)]
    );
    k.delete_applied(&f.target, "shop", &c).unwrap();
    k.delete_applied(&f.target, "dev", &c).unwrap();
    k.delete_applied(&f.target, "dev", &c).unwrap();
    assert_eq!(k.get_applied(&f.target, "dev", &c).unwrap(), None);
    // The kubeconfig's current context points at a closed port: every call above named ours.
    assert!(f.server.requests().len() > 8);
}

#[test]
fn node_readiness_waits_for_the_nodes_and_names_those_that_stay_not_ready() {
    let f = fixture("kapi-nodes");
    let node = |name: &str, ready: &str, message: &str| {
        json!({"kind": "Node", "metadata": {"name": name},
               "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletNotReady", "message": message}]}})
    };
    f.server
        .put(node("dev-control-plane", "True", "kubelet is posting ready status"));
    f.server.put(node(
        "dev-worker",
        "False",
        "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
    ));
    let err = KubeApi::default()
        .wait_nodes_ready(&f.target, Duration::from_secs(2), &Cancel::new())
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("node(s) not Ready after 2s: dev-worker (container runtime network not ready"),
        "{text}"
    );
    assert!(!text.contains("dev-control-plane"), "{text}");
    // A node that becomes Ready while devenv waits ends the wait.
    let server = &f.server;
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1200));
            server.put(node("dev-worker", "True", "kubelet is posting ready status"));
        });
        let t = Instant::now();
        KubeApi::default()
            .wait_nodes_ready(&f.target, Duration::from_secs(20), &Cancel::new())
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
    });
}

fn stuck_release(server: &ApiServer) {
    let labels = json!({"app.kubernetes.io/instance": "web"});
    server.put(json!({"kind": "Namespace", "metadata": {"name": "apps"}}));
    server.put(json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "apps", "generation": 1, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "example/web:nope"}]}}},
        "status": {"observedGeneration": 1, "replicas": 1, "unavailableReplicas": 1}}));
    server.put(json!({"kind": "Pod", "metadata": {"name": "web-7d9f8-x2x4k", "namespace": "apps", "labels": labels},
        "spec": {"containers": [{"name": "web", "image": "example/web:nope"}]},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "web", "image": "example/web:nope", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"example/web:nope\""}}}]}}));
    server.put(json!({"kind": "StatefulSet", "metadata": {"name": "web-db", "namespace": "apps", "generation": 1, "labels": labels},
        "spec": {"replicas": 1, "serviceName": "web-db", "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}}},
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 0}}));
    server.put(json!({"kind": "Pod", "metadata": {"name": "web-db-0", "namespace": "apps", "labels": labels},
        "spec": {"containers": [{"name": "postgres", "image": "postgres:18.6"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "postgres", "image": "postgres:18.6", "imageID": "", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container=postgres"}}}]}}));
    server.put(json!({"kind": "Event", "metadata": {"name": "web-7d9f8-x2x4k.17", "namespace": "apps"}, "type": "Warning", "reason": "Failed",
        "message": "Failed to pull image \"example/web:nope\": rpc error: code = NotFound", "involvedObject": {"kind": "Pod", "name": "web-7d9f8-x2x4k", "namespace": "apps"}}));
    server.put(json!({"kind": "Event", "metadata": {"name": "other.1", "namespace": "apps"}, "type": "Warning", "reason": "Failed",
        "message": "someone else's trouble", "involvedObject": {"kind": "Pod", "name": "unrelated-0", "namespace": "apps"}}));
    server.store.lock().unwrap().logs.insert(
        ("apps".into(), "web-db-0".into(), "postgres".into()),
        "LOG:  starting PostgreSQL 18.6\nFATAL:  could not open file \"global/pg_filenode.map\": Permission denied\n"
            .into(),
    );
}

#[test]
fn release_readiness_explains_an_image_pull_failure_a_crash_loop_and_the_warning_events() {
    let f = fixture("kapi-stuck");
    stuck_release(&f.server);
    let t = Instant::now();
    let err = KubeApi::default()
        .wait_ready(&f.target, &web(), Duration::from_secs(2), &Cancel::new())
        .unwrap_err();
    assert!(t.elapsed() >= Duration::from_secs(2) && t.elapsed() < Duration::from_secs(6));
    let text = err.to_string();
    for want in [
        "web (namespace apps) is not ready after 2s",
        "deployment/web: 0/1 ready",
        "statefulset/web-db: 0/1 ready",
        "pod web-7d9f8-x2x4k (Pending): container web is ImagePullBackOff for image example/web:nope",
        "pod web-db-0 (Running): container postgres is CrashLoopBackOff",
        "| FATAL:  could not open file \"global/pg_filenode.map\": Permission denied",
        "event Failed pod/web-7d9f8-x2x4k: Failed to pull image \"example/web:nope\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("someone else's trouble"), "{text}");
    assert!(err.help().unwrap().contains("devenv load"), "{err:?}");
    // The pods of the release were found by its instance label, in one list per kind.
    let reqs = f.server.requests();
    assert!(
        reqs.iter().any(|r| r.starts_with("GET /api/v1/namespaces/apps/pods?")
            && r.contains("labelSelector=app.kubernetes.io%2Finstance%3Dweb")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .any(|r| r.contains("/pods/web-db-0/log?") && r.contains("previous=true"))
    );
}

#[test]
fn release_readiness_returns_as_soon_as_the_workloads_are_ready() {
    let f = fixture("kapi-ready");
    stuck_release(&f.server);
    let server = &f.server;
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1200));
            let mut d = server.get("deployments", "apps", "web").unwrap();
            d["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
            server.put(d);
            let mut ss = server.get("statefulsets", "apps", "web-db").unwrap();
            ss["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1});
            server.put(ss);
        });
        let t = Instant::now();
        KubeApi::default()
            .wait_ready(&f.target, &web(), Duration::from_secs(30), &Cancel::new())
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    });
}

#[test]
fn a_cancelled_wait_stops_at_once() {
    let f = fixture("kapi-cancel");
    stuck_release(&f.server);
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c2.cancel(devenv::exec::Reason::Signal(devenv::error::Signal::Int));
    });
    let t = Instant::now();
    let err = KubeApi::default()
        .wait_ready(&f.target, &web(), Duration::from_secs(60), &cancel)
        .unwrap_err();
    assert!(matches!(err, devenv::error::Error::Interrupted(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn the_smoke_objects_survive_the_admission_webhook_race_and_are_removed_with_their_namespace() {
    let f = fixture("kapi-smoke");
    {
        let mut st = f.server.store.lock().unwrap();
        st.webhook_failures = 2;
        st.controllers = true;
    }
    let k = KubeApi::default();
    let c = Cancel::new();
    let s = spec();
    k.create_smoke_namespace(&f.target, &s, &c).unwrap();
    k.smoke_echo(&f.target, &s, Duration::from_secs(30), &c).unwrap();
    let posts = f
        .server
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /apis/networking.k8s.io/v1/namespaces/devenv-smoke-0a1b2c/ingresses"))
        .count();
    assert_eq!(posts, 3, "two refusals by the webhook, then the Ingress");
    let ns = f.server.get("namespaces", "", "devenv-smoke-0a1b2c").unwrap();
    assert_eq!(ns["metadata"]["labels"]["devenv.dev/smoke"], "dev");
    assert_eq!(ns["metadata"]["annotations"]["devenv.dev/owner"], "laptop/4242");
    let ing = f.server.get("ingresses", "devenv-smoke-0a1b2c", "echo").unwrap();
    assert_eq!(ing["spec"]["rules"][0]["host"], "0a1b2c.dev.devenv-smoke.localhost");
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "echo"
    );
    let dep = f.server.get("deployments", "devenv-smoke-0a1b2c", "echo").unwrap();
    let container = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "docker.io/hashicorp/http-echo:1.0.0");
    assert_eq!(container["args"][0], "-text=0a1b2c");

    let targets = vec![
        ("postgresql.devenv-data.svc.cluster.local".to_string(), 5432),
        ("redis.devenv-data.svc.cluster.local".to_string(), 6379),
    ];
    k.smoke_job(&f.target, &s, &targets, Duration::from_secs(30), &c)
        .unwrap();
    let job = f.server.get("jobs", "devenv-smoke-0a1b2c", "dns").unwrap();
    let containers = job["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["name"], "connect-postgresql");
    // The names travel as arguments to a fixed script, never inside it.
    assert_eq!(
        containers[1]["command"],
        json!([
            "sh",
            "-c",
            "nslookup \"$0\" && nc -z -w 5 \"$0\" \"$1\"",
            "redis.devenv-data.svc.cluster.local",
            "6379"
        ])
    );
    assert_eq!(job["spec"]["backoffLimit"], 0);

    let found = k.smoke_namespaces(&f.target, "dev", &c).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].owner, "laptop/4242");
    assert_eq!(found[0].created, 1_795_000_000);
    assert!(k.smoke_namespaces(&f.target, "other-env", &c).unwrap().is_empty());
    k.delete_namespace(&f.target, "devenv-smoke-0a1b2c", &c).unwrap();
    k.delete_namespace(&f.target, "devenv-smoke-0a1b2c", &c).unwrap();
    assert!(f.server.get("ingresses", "devenv-smoke-0a1b2c", "echo").is_none());
    assert!(k.smoke_namespaces(&f.target, "dev", &c).unwrap().is_empty());
}

#[test]
fn a_failed_in_cluster_job_says_which_container_failed_and_what_it_printed() {
    let f = fixture("kapi-job");
    let k = KubeApi::default();
    let c = Cancel::new();
    let s = spec();
    k.create_smoke_namespace(&f.target, &s, &c).unwrap();
    // The Job's pod, as the cluster would report it after nc could not resolve redis.
    let ns = s.namespace.as_str();
    let server = &f.server;
    std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            let mut job = server.get("jobs", ns, "dns").unwrap();
            job["status"] = json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
            server.put(job);
            server.put(json!({"kind": "Pod", "metadata": {"name": "dns-abcde", "namespace": ns, "labels": {"app.kubernetes.io/instance": "devenv-smoke-dns"}},
                "status": {"phase": "Failed", "containerStatuses": [
                    {"name": "connect-postgresql", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "connect-redis", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}}));
            server.store.lock().unwrap().logs.insert(
                (ns.into(), "dns-abcde".into(), "connect-redis".into()),
                "Server:\t\t10.96.0.10\n** server can't find redis.devenv-data.svc.cluster.local: NXDOMAIN\n".into(),
            );
        });
        let err = k
            .smoke_job(
                &f.target,
                &s,
                &[("redis.devenv-data.svc.cluster.local".into(), 6379)],
                Duration::from_secs(20),
                &c,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the in-cluster DNS check (namespace devenv-smoke-0a1b2c) failed"),
            "{err}"
        );
        assert!(
            err.contains("job/dns: failed (Job has reached the specified backoff limit)"),
            "{err}"
        );
        assert!(
            err.contains("container connect-redis exited with code 1 (Error)"),
            "{err}"
        );
        assert!(
            err.contains("| ** server can't find redis.devenv-data.svc.cluster.local: NXDOMAIN"),
            "{err}"
        );
        assert!(!err.contains("connect-postgresql exited"), "{err}");
    });
}

#[test]
fn an_unreachable_cluster_a_bad_kubeconfig_and_a_garbage_answer_are_clear_errors() {
    let f = fixture("kapi-bad");
    let c = Cancel::new();
    assert_eq!(KubeApi::default().server_version(&f.target, &c).unwrap(), "v1.36.4");
    // The kubeconfig's other context: nothing listens there.
    let prod = KubeTarget {
        context: "prod-admin".into(),
        ..f.target.clone()
    };
    let e = KubeApi::default().get_applied(&prod, "dev", &c).unwrap_err();
    assert!(
        e.to_string().contains("reading devenv's records (context prod-admin)"),
        "{e}"
    );
    assert!(e.help().unwrap().contains("devenv status"), "{e:?}");
    // A context the kubeconfig does not have.
    let missing = KubeTarget {
        context: "kind-nope".into(),
        ..f.target.clone()
    };
    let e = KubeApi::default().server_version(&missing, &c).unwrap_err();
    assert!(e.to_string().contains("context `kind-nope` cannot be used"), "{e}");
    // A kubeconfig that is not one.
    std::fs::write(&f.target.kubeconfig, "{{{ this is not yaml").unwrap();
    let e = KubeApi::default().server_version(&f.target, &c).unwrap_err();
    assert!(e.to_string().contains("not a usable kubeconfig"), "{e}");
    assert!(
        e.to_string().contains(&f.target.kubeconfig.display().to_string()),
        "{e}"
    );
    assert!(e.help().unwrap().contains("delete it"), "{e:?}");
    // A proxy's error page instead of the API.
    std::fs::write(&f.target.kubeconfig, f.server.kubeconfig("kind-dev")).unwrap();
    f.server.store.lock().unwrap().garbage = Some("<html><body>502 Bad Gateway</body></html>".into());
    let e = KubeApi::default().get_applied(&f.target, "dev", &c).unwrap_err();
    assert!(
        e.to_string().contains("reading devenv's records (context kind-dev)"),
        "{e}"
    );
    let e = KubeApi::default()
        .wait_ready(&f.target, &web(), Duration::from_secs(1), &c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("listing the objects of `app.kubernetes.io/instance=web`"),
        "{e}"
    );
}

/// Real kubectl against the test API server: the double speaks the protocol kubectl speaks.
#[test]
fn real_kubectl_reads_what_devenv_wrote_and_lists_the_pods() {
    let Some(kubectl) = which::which("kubectl").ok() else {
        assert!(
            std::env::var("CI").is_err(),
            "kubectl is missing; .ci/run installs it (CI=true: a missing tool fails, never skips)"
        );
        eprintln!("SKIPPED (not CI): kubectl is not installed");
        return;
    };
    let f = fixture("kapi-kubectl");
    stuck_release(&f.server);
    KubeApi::default()
        .set_applied(&f.target, "dev", "cluster", Some("abc123"), &Cancel::new())
        .unwrap();
    let kubectl_out = |args: &[&str]| {
        let out = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&f.target.kubeconfig)
            .args(["--context", "kind-dev"])
            .args(args)
            .env("HOME", f._dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let pods = kubectl_out(&["get", "pods", "-A"]);
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{pods}"
    );
    assert!(
        pods.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..4]
                == ["apps", "web-7d9f8-x2x4k", "0/1", "ImagePullBackOff"]),
        "{pods}"
    );
    assert!(pods.contains("CrashLoopBackOff"), "{pods}");
    let cm: serde_json::Value = serde_json::from_str(&kubectl_out(&[
        "get",
        "configmap",
        "devenv-dev",
        "-n",
        "kube-system",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(cm["data"]["cluster"], "abc123");
    assert_eq!(cm["kind"], "ConfigMap");
}

#[test]
fn the_data_volume_is_a_retained_host_path_volume_pre_bound_to_its_claim_and_made_once() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let f = fixture("kapi-volume");
    let v = devenv::world::VolumeSpec {
        component: "postgresql".into(),
        name: "devenv-dev-postgresql".into(),
        namespace: "devenv-data".into(),
        claim: "postgresql-data".into(),
        node_path: "/devenv-data/postgresql".into(),
        size: "1Gi".into(),
        access: devenv::world::Access::ReadWriteOnce,
        host_dir: devenv::world::HostDir::Data("postgresql"),
    };
    KubeApi::default().ensure_volume(&f.target, &v, &Cancel::new()).unwrap();
    // A second up finds them and changes nothing.
    KubeApi::default().ensure_volume(&f.target, &v, &Cancel::new()).unwrap();
    // What the server holds reads back as the Kubernetes API types.
    let pv: PersistentVolume =
        serde_json::from_value(f.server.get("persistentvolumes", "", "devenv-dev-postgresql").unwrap()).unwrap();
    let spec = pv.spec.unwrap();
    let host = spec.host_path.unwrap();
    assert_eq!(
        (host.path.as_str(), host.type_.as_deref()),
        ("/devenv-data/postgresql", Some("Directory")),
        "devenv makes the directory itself: one the kubelet made would be root's, mode 0755"
    );
    assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
    assert_eq!(spec.storage_class_name.as_deref(), Some("devenv-data"));
    let claim_ref = spec.claim_ref.unwrap();
    assert_eq!(
        (claim_ref.namespace.as_deref(), claim_ref.name.as_deref()),
        (Some("devenv-data"), Some("postgresql-data"))
    );
    let pvc: PersistentVolumeClaim = serde_json::from_value(
        f.server
            .get("persistentvolumeclaims", "devenv-data", "postgresql-data")
            .unwrap(),
    )
    .unwrap();
    let pspec = pvc.spec.unwrap();
    assert_eq!(pspec.volume_name.as_deref(), Some("devenv-dev-postgresql"));
    assert_eq!(pspec.storage_class_name.as_deref(), Some("devenv-data"));
    let creates = f.server.requests().iter().filter(|r| r.starts_with("POST")).count();
    assert_eq!(
        creates, 6,
        "three creates per call; the second call's were answered 409 AlreadyExists"
    );
}

fn shared_volume(namespace: &str, claim: &str) -> devenv::world::VolumeSpec {
    devenv::world::VolumeSpec {
        component: "shared-data".into(),
        name: "devenv-dev-shared-data".into(),
        namespace: namespace.into(),
        claim: claim.into(),
        node_path: "/devenv-data/shared".into(),
        size: "2Gi".into(),
        access: devenv::world::Access::ReadWriteMany,
        host_dir: devenv::world::HostDir::Data("shared"),
    }
}

#[test]
fn the_shared_volume_is_read_write_many_refused_when_bound_to_another_claim_and_deleted_with_its_claim() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let f = fixture("kapi-shared-volume");
    let c = Cancel::new();
    let v = shared_volume("apps", "files");
    KubeApi::default().ensure_volume(&f.target, &v, &c).unwrap();
    // Read back through the Kubernetes API types.
    let pv: PersistentVolume =
        serde_json::from_value(f.server.get("persistentvolumes", "", "devenv-dev-shared-data").unwrap()).unwrap();
    let spec = pv.spec.unwrap();
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteMany".to_string()]));
    assert_eq!(spec.host_path.unwrap().path, "/devenv-data/shared");
    assert_eq!(spec.capacity.unwrap()["storage"].0, "2Gi");
    let pvc: PersistentVolumeClaim =
        serde_json::from_value(f.server.get("persistentvolumeclaims", "apps", "files").unwrap()).unwrap();
    let pspec = pvc.spec.unwrap();
    assert_eq!(pspec.access_modes, Some(vec!["ReadWriteMany".to_string()]));
    assert_eq!(pspec.volume_name.as_deref(), Some("devenv-dev-shared-data"));
    assert_eq!(pspec.resources.unwrap().requests.unwrap()["storage"].0, "2Gi");

    // devenv.yaml renames the claim while the volume is still bound to the old one.
    let err = KubeApi::default()
        .ensure_volume(&f.target, &shared_volume("apps", "renamed"), &c)
        .unwrap_err()
        .render();
    assert!(
        err.contains("PersistentVolume devenv-dev-shared-data is bound to claim apps/files, not to apps/renamed"),
        "{err}"
    );
    assert!(
        err.contains("kubectl delete pvc -n apps files` then `kubectl delete pv devenv-dev-shared-data"),
        "{err}"
    );

    KubeApi::default()
        .delete_volume(&f.target, "devenv-dev-shared-data", "apps", "files", &c)
        .unwrap();
    assert!(
        f.server
            .get("persistentvolumes", "", "devenv-dev-shared-data")
            .is_none()
    );
    assert!(f.server.get("persistentvolumeclaims", "apps", "files").is_none());
    // Already gone is fine.
    KubeApi::default()
        .delete_volume(&f.target, "devenv-dev-shared-data", "apps", "files", &c)
        .unwrap();
}

#[test]
fn the_shared_check_writes_from_one_pod_and_reads_from_another_through_a_real_directory() {
    let f = fixture("kapi-shared-check");
    let dir = TempDir::new("kapi-shared-dir");
    {
        let mut st = f.server.store.lock().unwrap();
        st.claim_dirs
            .insert(("apps".into(), "files".into()), dir.path().to_path_buf());
        st.job_node = "dev-worker".into();
    }
    f.server.put(json!({"kind": "Namespace", "metadata": {"name": "apps"}}));
    let s = spec();
    KubeApi::default()
        .smoke_shared(
            &f.target,
            &s,
            &shared_volume("apps", "files"),
            Duration::from_secs(5),
            &Cancel::new(),
        )
        .unwrap();
    // The reader removed the writer's file; both Jobs are gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(f.server.get("jobs", "apps", "devenv-shared-write-0a1b2c").is_none());
    assert!(f.server.get("jobs", "apps", "devenv-shared-read-0a1b2c").is_none());
    // The reader was asked to keep off the writer's node.
    let posts = f.server.requests();
    assert_eq!(
        posts
            .iter()
            .filter(|r| r.starts_with("POST /apis/batch/v1/namespaces/apps/jobs"))
            .count(),
        2
    );
    let reader = devenv::adapters::kube::shared_job_object(
        &s,
        &shared_volume("apps", "files"),
        "read",
        Some("dev-worker"),
        Duration::from_secs(5),
    );
    let aff = serde_json::to_value(&reader).unwrap();
    assert_eq!(
        aff.pointer("/spec/template/spec/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/preference/matchExpressions/0/values/0"),
        Some(&json!("dev-worker"))
    );

    // The reader's own script fails when the writer's file is not there.
    let other = TempDir::new("kapi-shared-other");
    let s2 = SmokeSpec {
        token: "ffee00".into(),
        ..spec()
    };
    let reader = devenv::adapters::kube::shared_job_object(
        &s2,
        &shared_volume("apps", "files"),
        "read",
        None,
        Duration::from_secs(5),
    );
    let container = serde_json::to_value(&reader).unwrap()["spec"]["template"]["spec"]["containers"][0].clone();
    let passed = crate::apiserver::run_container(&container, other.path());
    assert!(!passed, "the reader passed without the writer's file");
    // End to end: a claim whose directory is not there fails the check, naming the claim.
    f.server
        .store
        .lock()
        .unwrap()
        .claim_dirs
        .insert(("apps".into(), "files".into()), other.path().join("not-mounted"));
    let err = KubeApi::default()
        .smoke_shared(
            &f.target,
            &s2,
            &shared_volume("apps", "files"),
            Duration::from_secs(3),
            &Cancel::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the shared volume check (claim apps/files): the writer"),
        "{err}"
    );
    assert!(
        f.server.get("jobs", "apps", "devenv-shared-write-ffee00").is_none(),
        "deleted after a failure too"
    );
}

/// A helm release Secret as helm 3 and 4 store it: labels, and `release` = base64(gzip(JSON)).
fn helm_secret(name: &str, ns: &str, revision: u32, status: &str, chart: &str, version: &str) -> serde_json::Value {
    use std::io::Write;
    let body = json!({"name": name, "namespace": ns, "version": revision, "info": {"status": status},
        "chart": {"metadata": {"name": chart, "version": version}}});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.to_string().as_bytes()).unwrap();
    let inner = devenv::probe::scram::b64encode(&gz.finish().unwrap());
    json!({"kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": format!("sh.helm.release.v1.{name}.v{revision}"), "namespace": ns,
            "labels": {"owner": "helm", "name": name, "status": status, "version": revision.to_string()}},
        "data": {"release": devenv::probe::scram::b64encode(inner.as_bytes())}})
}

#[test]
fn helm_releases_are_read_from_helms_secrets_in_one_request_at_their_latest_revision() {
    let f = fixture("kapi-helm-secrets");
    f.server.put(helm_secret(
        "postgresql",
        "devenv-data",
        1,
        "superseded",
        "postgres",
        "1.6.6",
    ));
    f.server.put(helm_secret(
        "postgresql",
        "devenv-data",
        2,
        "deployed",
        "postgres",
        "1.6.7",
    ));
    f.server.put(helm_secret(
        "monitoring",
        "monitoring",
        1,
        "failed",
        "kube-prometheus-stack",
        "88.2.0",
    ));
    f.server.put(helm_secret(
        "redis",
        "devenv-data",
        3,
        "pending-upgrade",
        "redis",
        "2.4.4",
    ));
    // Not helm's: ignored.
    f.server.put(json!({"kind": "Secret", "type": "Opaque", "metadata": {"name": "app", "namespace": "default", "labels": {"owner": "helm"}}, "data": {"release": "bm90IGhlbG0="}}));
    let c = Cancel::new();
    let mut got = KubeApi::default()
        .helm_releases(&f.target, true, &c)
        .unwrap()
        .expect("readable");
    got.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<(String, String, String, String)> = got
        .into_iter()
        .map(|r| (r.name, r.namespace, r.status, r.chart))
        .collect();
    let row = |a: &str, b: &str, c: &str, d: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string());
    assert_eq!(
        rows,
        vec![
            row("monitoring", "monitoring", "failed", "kube-prometheus-stack-88.2.0"),
            row("postgresql", "devenv-data", "deployed", "postgres-1.6.7"),
            row("redis", "devenv-data", "pending-upgrade", "redis-2.4.4"),
        ]
    );
    let lists: Vec<String> = f
        .server
        .requests()
        .into_iter()
        .filter(|r| r.contains("/secrets"))
        .collect();
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert!(
        lists[0].contains("labelSelector=owner%3Dhelm%2Cstatus%21%3Dsuperseded"),
        "{lists:?}"
    );
    // What `up` reads: metadata only (no release bodies), the same releases without their charts.
    let mut light = KubeApi::default()
        .helm_releases(&f.target, false, &c)
        .unwrap()
        .expect("readable");
    light.sort_by(|a, b| a.name.cmp(&b.name));
    let light: Vec<(String, String, String, String)> = light
        .into_iter()
        .map(|r| (r.name, r.namespace, r.status, r.chart))
        .collect();
    assert_eq!(
        light,
        vec![
            row("monitoring", "monitoring", "failed", ""),
            row("postgresql", "devenv-data", "deployed", ""),
            row("redis", "devenv-data", "pending-upgrade", ""),
        ]
    );
    assert_eq!(
        f.server.store.lock().unwrap().metadata_lists,
        1,
        "one metadata-only list"
    );
    // Not allowed to list Secrets: None, so that devenv asks `helm list` instead.
    f.server.store.lock().unwrap().forbidden.push("secrets".into());
    assert_eq!(KubeApi::default().helm_releases(&f.target, true, &c).unwrap(), None);
    assert_eq!(KubeApi::default().helm_releases(&f.target, false, &c).unwrap(), None);
    // helm told to keep its releases elsewhere (HELM_DRIVER as devenv was started with): not
    // looked for in Secrets at all.
    let before = f.server.requests().len();
    let elsewhere = KubeApi {
        helm_driver: Some("configmap".into()),
    };
    assert_eq!(elsewhere.helm_releases(&f.target, true, &c).unwrap(), None);
    assert_eq!(f.server.requests().len(), before);
}

#[test]
fn the_metrics_check_waits_through_503s_and_fails_in_time_naming_the_metrics_api() {
    let f = fixture("kapi-metrics");
    f.server
        .put(json!({"kind": "NodeMetrics", "metadata": {"name": "dev-control-plane"},
        "timestamp": "2026-11-29T10:00:00Z", "window": "20s", "usage": {"cpu": "123m", "memory": "512Mi"}}));
    f.server.store.lock().unwrap().metrics_unavailable = 2;
    let c = Cancel::new();
    KubeApi::default()
        .node_metrics(&f.target, Duration::from_secs(10), &c)
        .unwrap();
    // The core nodes are another resource: the metrics did not land there.
    assert!(f.server.get("nodes", "", "dev-control-plane").is_none());

    f.server.store.lock().unwrap().metrics_unavailable = u32::MAX;
    let t = Instant::now();
    let err = KubeApi::default()
        .node_metrics(&f.target, Duration::from_secs(2), &c)
        .unwrap_err()
        .to_string();
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "bounded by its timeout: {:?}",
        t.elapsed()
    );
    assert!(
        err.contains("the metrics API (metrics.k8s.io/v1beta1 nodes) gave no node's usage within 2s"),
        "{err}"
    );
}

#[test]
fn prometheus_made_by_its_operator_is_waited_for_until_it_appears_and_is_ready() {
    let f = fixture("kapi-operator");
    let server = &f.server;
    let selector = "app.kubernetes.io/name=prometheus,app.kubernetes.io/managed-by=prometheus-operator";
    // Nothing carries those labels yet: the operator has not made the StatefulSet.
    let t = Instant::now();
    let err = KubeApi::default()
        .wait_ready(&f.target, &prometheus(selector), Duration::from_secs(2), &Cancel::new())
        .unwrap_err()
        .render();
    assert!(t.elapsed() >= Duration::from_secs(2), "it waited: {:?}", t.elapsed());
    assert!(
        err.contains("prometheus (namespace monitoring) did not appear within 2s: no Deployment, StatefulSet, DaemonSet or Job is labelled app.kubernetes.io/name=prometheus"),
        "{err}"
    );
    assert!(err.contains("an operator's log says why it made nothing"), "{err}");
    // The operator makes it, not ready at first, then ready: the wait returns then.
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(600));
            let labels = json!({"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/managed-by": "prometheus-operator",
                "app.kubernetes.io/instance": "monitoring-kube-prometheus-prometheus"});
            server.put(json!({"kind": "StatefulSet", "metadata": {"name": "prometheus-monitoring-kube-prometheus-prometheus",
                "namespace": "monitoring", "generation": 1, "labels": labels},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}, "template": {}},
                "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 0}}));
            std::thread::sleep(Duration::from_millis(1500));
            let mut ss = server
                .get("statefulsets", "monitoring", "prometheus-monitoring-kube-prometheus-prometheus")
                .unwrap();
            ss["status"]["readyReplicas"] = json!(1);
            server.put(ss);
        });
        let t = Instant::now();
        KubeApi::default()
            .wait_ready(
                &f.target,
                &prometheus(selector),
                Duration::from_secs(20),
                &Cancel::new(),
            )
            .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(2000) && t.elapsed() < Duration::from_secs(6),
            "returned when it was ready, not when it appeared: {:?}",
            t.elapsed()
        );
    });
}

//! The optional components (monitoring, metrics-server, shared-data) end to end, in-process, on
//! the SIMULATED world (src/sim/: no cluster, chart or container is involved). The shared
//! volume's files are real files on this machine: the simulated pods write and read them through
//! the directories the generated kind config mounts.

use crate::common::Lab;
use devenv::sim::Call;

fn overlap(a: &Call, b: &Call) -> bool {
    a.start_ms < b.end_ms && b.start_ms < a.end_ms
}

fn call<'a>(calls: &'a [Call], op: &str, target: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.op == op && c.target == target)
        .unwrap_or_else(|| panic!("no {op} {target} in {calls:?}"))
}

#[test]
fn sim_up_with_monitoring_installs_it_beside_the_defaults_and_a_noop_up_makes_no_helm_call() {
    let lab = Lab::new("opt-mon");
    lab.world.set_latency("helm.upgrade_install", 150);
    // PostgreSQL's install is the slow one here, so that the overlap shows.
    lab.world.set_latency("helm.upgrade_install:postgresql", 500);
    let out = lab.run(&["up", "--with", "monitoring"]);
    assert_eq!(out.code, 0, "{out:?}");
    let calls = lab.world.calls();
    let mon = call(&calls, "helm.upgrade_install", "monitoring");
    let pg = call(&calls, "helm.upgrade_install", "postgresql");
    let ingress_ready = call(&calls, "kube.wait_ready", "ingress-nginx");
    assert!(
        overlap(mon, pg),
        "monitoring installs beside PostgreSQL: {mon:?} {pg:?}"
    );
    assert!(
        mon.start_ms >= ingress_ready.end_ms,
        "its Ingresses wait for the controller's admission webhook: {mon:?} {ingress_ready:?}"
    );
    // Its smoke checks ran and passed.
    for row in ["prometheus 127.0.0.1:80 ", "grafana 127.0.0.1:80 "] {
        assert!(
            out.stderr.lines().any(|l| l.contains(row) && l.contains(" ok ")),
            "{row}: {out:?}"
        );
    }
    // The Grafana password is generated, kept private and only printed by `env`.
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.state.path().join("devenv/credentials.json")).unwrap())
            .unwrap();
    let pw = creds["grafana_password"].as_str().unwrap();
    assert_eq!(pw.len(), 36);
    assert!(!out.stderr.contains(pw) && !out.stdout.contains(pw));
    let values = std::fs::read_to_string(lab.state.path().join("devenv/values/monitoring.devenv.yaml")).unwrap();
    assert!(
        values.contains(pw) && values.contains("grafana.devenv.localhost"),
        "{values}"
    );
    assert!(values.contains("ingressClassName: nginx"), "{values}");
    let env = lab.run(&["env"]);
    assert_eq!(env.code, 0, "{env:?}");
    for line in [
        "export PROMETHEUS_URL='http://prometheus.devenv.localhost'",
        "export GRAFANA_URL='http://grafana.devenv.localhost'",
        "export GRAFANA_USER='admin'",
    ] {
        assert!(env.stdout.contains(line), "{line}: {env:?}");
    }
    assert!(env.stdout.contains(&format!("export GRAFANA_PASSWORD='{pw}'")));

    // `--with` is remembered: a plain `up` keeps monitoring, reads helm's releases through the
    // API, and runs no helm at all.
    let before = lab.world.calls().len();
    let again = lab.run(&["up"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("nothing to do"), "{again:?}");
    let since = &lab.world.calls()[before..];
    assert!(
        !since.iter().any(|c| c.op.starts_with("helm.")),
        "the no-op up called helm: {since:?}"
    );
    assert!(!since.iter().any(|c| c.mutating), "{since:?}");
    let status = lab.run(&["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.lines().any(|l| l.contains("monitoring")
            && l.contains("kube-prometheus-stack-88.2.0")
            && l.contains("http://grafana.devenv.localhost")),
        "{status:?}"
    );

    // Off again: the plan says why, `up` uninstalls it and says so.
    let plan = lab.run(&["plan", "--without", "monitoring"]);
    assert!(
        plan.stdout.lines().any(|l| l.contains("delete   release monitoring")
            && l.ends_with("switched off with --without; devenv installed it, so devenv removes it")),
        "{plan:?}"
    );
    let off = lab.run(&["up", "--without", "monitoring"]);
    assert_eq!(off.code, 0, "{off:?}");
    assert!(lab.mutations().contains(&"helm.uninstall monitoring".to_string()));
    assert!(
        off.stderr
            .contains("monitoring uninstalled: switched off with --without"),
        "{off:?}"
    );
    assert!(
        !off.stderr.contains("prometheus 127.0.0.1"),
        "no Prometheus check any more"
    );
    let after = lab.run(&["up"]);
    assert!(
        after.stderr.contains("nothing to do"),
        "the --without is remembered too: {after:?}"
    );
}

#[test]
fn sim_monitoring_switched_on_in_devenv_yaml_with_traefik_uses_its_class_and_cannot_be_contradicted() {
    let lab = Lab::new("opt-mon-yaml");
    lab.project
        .write("devenv.yaml", "ingress: traefik\nmonitoring:\n  enabled: true\n");
    let out = lab.run(&["up", "--no-test"]);
    assert_eq!(out.code, 0, "{out:?}");
    let values = std::fs::read_to_string(lab.state.path().join("devenv/values/monitoring.devenv.yaml")).unwrap();
    assert!(values.contains("ingressClassName: traefik"), "{values}");
    let calls = lab.world.calls();
    assert!(
        call(&calls, "helm.upgrade_install", "monitoring").start_ms
            >= call(&calls, "kube.wait_ready", "traefik").end_ms
    );
    let out = lab.run(&["up", "--without", "monitoring"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("--without monitoring contradicts devenv.yaml:3:12 (`enabled: true`)"),
        "{out:?}"
    );
    assert!(out.stderr.contains("help: set `enabled: false` there"), "{out:?}");
}

#[test]
fn sim_metrics_server_gets_the_kind_flag_and_its_check_asks_the_metrics_api() {
    let lab = Lab::new("opt-metrics");
    lab.project.write("devenv.yaml", "metricsServer:\n  enabled: true\n");
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    let values = std::fs::read_to_string(lab.state.path().join("devenv/values/metrics-server.devenv.yaml")).unwrap();
    let values: serde_json::Value = serde_saphyr::from_str(&values).unwrap();
    assert_eq!(values["args"], serde_json::json!(["--kubelet-insecure-tls"]));
    // The pinned image is the one that runs (the chart's `image.repository:image.tag`).
    assert_eq!(
        values["image"]["repository"],
        "registry.k8s.io/metrics-server/metrics-server"
    );
    assert_eq!(values["image"]["tag"], "v0.8.0");
    let calls = lab.world.calls();
    assert_eq!(
        call(&calls, "helm.upgrade_install", "metrics-server").op,
        "helm.upgrade_install"
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("metrics api") && l.contains(" ok ")),
        "{out:?}"
    );
    // When the metrics API does not answer, the smoke test says so.
    lab.world.inject(
        "kube.node_metrics",
        None,
        "the server is currently unable to handle the request (get nodes.metrics.k8s.io)",
        0,
    );
    let test = lab.run(&["test"]);
    assert_ne!(test.code, 0, "{test:?}");
    assert!(
        test.stderr.contains("metrics api") && test.stderr.contains("unable to handle the request"),
        "{test:?}"
    );
}

#[test]
fn sim_shared_files_written_by_a_pod_survive_down_and_up_and_purge_deletes_them() {
    let lab = Lab::new("opt-shared");
    let out = lab.run(&["up", "--with", "shared-data"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("shared volume default/shared-data") && l.contains(" ok ")),
        "{out:?}"
    );
    // The kind config devenv handed to kind mounts the data directory into the node.
    let kind: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.state.path().join("devenv/kind-config.yaml")).unwrap())
            .unwrap();
    let data = lab.state.path().join("devenv/data");
    assert!(
        kind["nodes"][0]["extraMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["containerPath"] == "/devenv-data" && m["hostPath"] == data.display().to_string()),
        "{kind}"
    );
    // A pod writes a file on the claim; it is a file on this machine.
    lab.world
        .claim_write("devenv", "default/shared-data", "notes.txt", "hello from a pod\n");
    let on_host = data.join("shared/notes.txt");
    assert_eq!(std::fs::read_to_string(&on_host).unwrap(), "hello from a pod\n");
    let down = lab.run(&["down"]);
    assert_eq!(down.code, 0, "{down:?}");
    assert!(down.stderr.contains("the shared files in"), "{down:?}");
    let up = lab.run(&["up"]);
    assert_eq!(up.code, 0, "{up:?}");
    assert_eq!(
        lab.world
            .claim_read("devenv", "default/shared-data", "notes.txt")
            .as_deref(),
        Some("hello from a pod\n"),
        "the new cluster's claim sees the old files"
    );
    assert_eq!(lab.run(&["down", "--purge"]).code, 0);
    assert!(!on_host.exists(), "--purge deletes devenv's own shared directory");
}

#[test]
fn sim_a_shared_path_of_the_users_is_mounted_kept_by_purge_and_a_late_one_waits_for_recreate() {
    let lab = Lab::new("opt-shared-path");
    // Switched on late, with a directory of the user's: the running cluster lacks the mount.
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    lab.project.write(
        "devenv.yaml",
        "sharedData:\n  enabled: true\n  path: ./shared\n  namespace: apps\n  claim: files\n  size: 2Gi\n",
    );
    let plan = lab.run(&["plan"]);
    assert!(plan.stdout.contains("waits for `devenv up --recreate`"), "{plan:?}");
    assert!(plan.stdout.contains("needs a new mount (/devenv-shared)"), "{plan:?}");
    let before = lab.mutations().len();
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !lab.mutations()[before..].iter().any(|m| m.contains("volume")),
        "{:?}",
        &lab.mutations()[before..]
    );
    let out = lab.run(&["up", "--recreate", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let kind = std::fs::read_to_string(lab.state.path().join("devenv/kind-config.yaml")).unwrap();
    let user_dir = lab.project.path().join("shared");
    assert!(
        kind.contains(&format!("\"hostPath\": \"{}\"", user_dir.display()))
            && kind.contains("\"containerPath\": \"/devenv-shared\""),
        "{kind}"
    );
    assert!(out.stderr.contains("shared volume apps/files"), "{out:?}");
    lab.world.claim_write("devenv", "apps/files", "report.csv", "a,b\n");
    assert_eq!(std::fs::read_to_string(user_dir.join("report.csv")).unwrap(), "a,b\n");
    let down = lab.run(&["down", "--purge"]);
    assert_eq!(down.code, 0, "{down:?}");
    assert!(down.stderr.contains("(your directory)"), "{down:?}");
    assert!(
        user_dir.join("report.csv").is_file(),
        "--purge never deletes the user's directory"
    );
}

#[test]
fn sim_shared_data_switched_on_late_needs_no_new_cluster_and_off_removes_only_the_volume() {
    let lab = Lab::new("opt-shared-late");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let before = lab.mutations().len();
    // PostgreSQL's persistent data already mounts the data directory: no recreate needed.
    let out = lab.run(&["up", "--with", "shared-data"]);
    assert_eq!(out.code, 0, "{out:?}");
    let changed = lab.mutations()[before..].to_vec();
    assert!(
        changed.contains(&"kube.ensure_volume devenv-devenv-shared-data".to_string()),
        "{changed:?}"
    );
    assert!(
        !changed
            .iter()
            .any(|m| m.starts_with("cluster.") || m.starts_with("helm.")),
        "{changed:?}"
    );
    lab.world.claim_write("devenv", "default/shared-data", "keep.txt", "x");
    let before = lab.mutations().len();
    let out = lab.run(&["up", "--without", "shared-data"]);
    assert_eq!(out.code, 0, "{out:?}");
    let changed = lab.mutations()[before..].to_vec();
    assert!(
        changed.contains(&"kube.delete_volume devenv-devenv-shared-data".to_string()),
        "{changed:?}"
    );
    assert!(!changed.iter().any(|m| m.starts_with("helm.")), "{changed:?}");
    assert!(
        out.stderr
            .contains("shared-data volume removed: switched off with --without; its files stay in"),
        "{out:?}"
    );
    assert!(lab.state.path().join("devenv/data/shared/keep.txt").is_file());
}

#[test]
fn sim_optional_component_mistakes_are_usage_or_config_errors_that_change_nothing() {
    let lab = Lab::new("opt-errors");
    let cases: &[(&[&str], Option<&str>, u8, &str)] = &[
        (&["up", "--with", "monitorin"], None, 2, "did you mean `monitoring`?"),
        (
            &["up", "--with", "grafana"],
            None,
            2,
            "there is no optional component `grafana`",
        ),
        (
            &["up", "--with", "monitoring", "--without", "monitoring"],
            None,
            2,
            "contradict each other",
        ),
        (
            &["up"],
            Some("sharedData:\n  enabled: true\n  size: lots\n"),
            2,
            "devenv.yaml:3:9: sharedData.size `lots` is not a Kubernetes quantity",
        ),
        (
            &["up"],
            Some("sharedData:\n  claim: Shared_Data\n"),
            2,
            "devenv.yaml:2:10: sharedData.claim `Shared_Data`",
        ),
        (
            &["up"],
            Some("driver: minikube\nsharedData:\n  path: ./x\n"),
            2,
            "only the kind driver does",
        ),
        (
            &["up", "--with", "shared-data", "--driver", "minikube"],
            None,
            2,
            "only the kind driver does",
        ),
        (&["up"], Some("monitoring:\n  enable: true\n"), 2, "devenv.yaml:2:3"),
    ];
    for (args, yaml, code, text) in cases {
        match yaml {
            Some(y) => lab.project.write("devenv.yaml", y),
            None => {
                let _ = std::fs::remove_file(lab.project.path().join("devenv.yaml"));
            }
        }
        let out = lab.run(args);
        assert_eq!(out.code, *code, "{args:?} {yaml:?}: {out:?}");
        assert!(
            out.stderr.contains(text),
            "{args:?} {yaml:?}: expected {text:?} in {out:?}"
        );
        assert!(out.stderr.contains("help:"), "{out:?}");
    }
    assert!(lab.mutations().is_empty(), "{:?}", lab.mutations());
    assert!(!lab.state.path().join("devenv/with").exists(), "nothing was remembered");
}

#[test]
fn sim_a_prometheus_that_its_operator_cannot_start_fails_monitoring_naming_the_image() {
    let lab = Lab::new("opt-prom-pull");
    lab.world.break_pods(
        "prometheus",
        devenv::sim::PodProblem {
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image \"quay.io/prometheus/prometheus:v3.7.3\"".into(),
            image: "quay.io/prometheus/prometheus:v3.7.3".into(),
            log: String::new(),
        },
    );
    let out = lab.run(&["up", "--with", "monitoring", "--timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("prometheus (namespace monitoring) is not ready after"),
        "{out:?}"
    );
    assert!(out.stderr.contains("quay.io/prometheus/prometheus:v3.7.3"), "{out:?}");
    // Not recorded as done: the next up tries monitoring again, and only it.
    lab.world.with(|s| s.pod_problems.clear()).unwrap();
    let before = lab.mutations().len();
    let again = lab.run(&["up"]);
    assert_eq!(again.code, 0, "{again:?}");
    let changed = lab.mutations()[before..].to_vec();
    assert!(
        changed.contains(&"helm.upgrade_install monitoring".to_string()),
        "{changed:?}"
    );
    assert!(
        !changed.iter().any(|m| m == "helm.upgrade_install postgresql"),
        "{changed:?}"
    );
}

#[test]
fn sim_monitoring_without_an_ingress_says_how_to_reach_grafana_instead() {
    let lab = Lab::new("opt-mon-noingress");
    lab.project.write("devenv.yaml", "ingress: none\n");
    let plan = lab.run(&["plan", "--with", "monitoring"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout
            .contains("(`ingress: none`): use `kubectl -n monitoring port-forward svc/monitoring-grafana 3000:80`"),
        "{plan:?}"
    );
    let up = lab.run(&["up", "--with", "monitoring"]);
    assert_eq!(up.code, 0, "{up:?}");
    assert!(up.stderr.contains("port-forward svc/monitoring-grafana"), "{up:?}");
    assert!(
        !up.stderr.contains("grafana 127.0.0.1"),
        "no check through an ingress that is not there"
    );
    let values = std::fs::read_to_string(lab.state.path().join("devenv/values/monitoring.devenv.yaml")).unwrap();
    assert!(!values.contains("ingress:"), "{values}");
    let env = lab.run(&["env"]);
    assert!(
        !env.stdout.contains("GRAFANA_URL") && env.stdout.contains("GRAFANA_PASSWORD"),
        "{env:?}"
    );
}

#[test]
fn sim_grafana_switched_off_in_the_monitoring_values_is_neither_exposed_nor_checked() {
    let lab = Lab::new("opt-mon-nografana");
    let builtin = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/helm-values/monitoring.yaml")).unwrap();
    lab.project.write(
        "helm-values/monitoring.yaml",
        &builtin.replace(
            "grafana:\n  defaultDashboardsEnabled: true",
            "grafana:\n  enabled: false",
        ),
    );
    let out = lab.run(&["up", "--with", "monitoring"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("prometheus 127.0.0.1:80 "), "{out:?}");
    assert!(!out.stderr.contains("grafana 127.0.0.1"), "{out:?}");
    let values = std::fs::read_to_string(lab.state.path().join("devenv/values/monitoring.devenv.yaml")).unwrap();
    assert!(
        values.contains("prometheus.devenv.localhost") && !values.contains("grafana.devenv.localhost"),
        "{values}"
    );
}

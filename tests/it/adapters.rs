//! The real adapters, without the real tools: the exact command lines they build, and how they
//! read the real output of kind, helm and docker (verbatim samples in tests/samples/).

use devenv::adapters::{docker, existing, helm, kind, minikube};
use devenv::exec::Cancel;
use devenv::process::ScriptedRunner;
use devenv::world::{
    ClusterProvider, ClusterSpec, ClusterState, ContainerEngine, Helm, InstallSpec, KubeTarget, ReleaseInfo,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn kind_with(runner: &Arc<ScriptedRunner>) -> kind::Kind {
    let engine = Arc::new(docker::DockerCli {
        runner: runner.clone(),
        program: "docker".into(),
        api: false,
    });
    kind::Kind {
        runner: runner.clone(),
        engine,
        transport: Arc::new(devenv::adapters::image_api::DockerApi { runner: runner.clone() }),
        logs_dir: PathBuf::from("/state/dev/logs"),
        kubeconfig: None,
    }
}

fn spec() -> ClusterSpec {
    ClusterSpec {
        name: "dev".into(),
        node_image: "kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed"
            .into(),
        config_path: PathBuf::from("/state/dev/kind-config.yaml"),
        kubernetes_version: "v1.35.1".into(),
        wait: Duration::from_secs(300),
    }
}

fn target() -> KubeTarget {
    KubeTarget {
        kubeconfig: PathBuf::from("/state/dev/kubeconfig"),
        context: "kind-dev".into(),
    }
}

fn argv(s: &str) -> Vec<String> {
    s.split(' ').map(String::from).collect()
}

#[test]
fn kind_create_pins_name_image_and_config_and_keeps_nodes_for_their_logs() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["kind", "create"], "");
    kind_with(&r).create(&spec(), &Cancel::new()).unwrap();
    assert_eq!(
        r.calls(),
        vec![argv(
            "kind create cluster --name dev --image kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed --config /state/dev/kind-config.yaml --retain --wait 300s"
        )]
    );
}

#[test]
fn with_export_context_off_kind_writes_only_devenvs_kubeconfig() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["kind"], "");
    let mut k = kind_with(&r);
    k.kubeconfig = Some(PathBuf::from("/state/dev/kubeconfig"));
    k.create(&spec(), &Cancel::new()).unwrap();
    k.delete("dev", &Cancel::new()).unwrap();
    let calls = r.calls();
    assert!(
        calls[0]
            .windows(2)
            .any(|w| w == ["--kubeconfig", "/state/dev/kubeconfig"]),
        "{calls:?}"
    );
    assert_eq!(
        calls[1],
        argv("kind delete cluster --name dev --kubeconfig /state/dev/kubeconfig")
    );
}

#[test]
fn exited_kind_nodes_are_started_through_the_engine() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(
        &["docker", "ps"],
        "dev-control-plane\tcontrol-plane\texited\ndev-worker\tworker\trunning\n",
    );
    r.ok(&["docker", "start"], "");
    kind_with(&r).start("dev", &Cancel::new()).unwrap();
    assert_eq!(r.calls()[1], argv("docker start dev-control-plane"));
}

#[test]
fn a_failed_kind_create_exports_logs_deletes_the_nodes_and_shows_kinds_error() {
    let r = Arc::new(ScriptedRunner::new());
    r.fail(
        &["kind", "create"],
        1,
        &sample("create-cluster-tty-fail-port-in-use-chaosmesh666.stderr.txt"),
    );
    r.ok(&["kind", "export", "logs"], "");
    r.ok(&["kind", "delete"], "");
    let err = kind_with(&r).create(&spec(), &Cancel::new()).unwrap_err();
    let calls = r.calls();
    assert_eq!(calls[1][..3], argv("kind export logs")[..]);
    assert!(calls[1][3].starts_with("/state/dev/logs/create-"));
    assert_eq!(calls[1][4..], argv("--name dev")[..]);
    assert_eq!(calls[2], argv("kind delete cluster --name dev"));
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("bind: address already in use"), "{err}");
    assert!(err.help().unwrap().contains("/state/dev/logs/create-"), "{err:?}");
}

#[test]
fn kind_nodes_are_found_by_label_and_an_exited_one_is_reported() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(
        &["docker", "ps"],
        "dev-control-plane\tcontrol-plane\trunning\ndev-worker\tworker\texited\n",
    );
    let state = kind_with(&r).observe("dev", &Cancel::new()).unwrap();
    assert_eq!(
        r.calls(),
        vec![vec![
            "docker".to_string(),
            "ps".into(),
            "--all".into(),
            "--filter".into(),
            "label=io.x-k8s.kind.cluster=dev".into(),
            "--format".into(),
            "{{.Names}}\t{{.Label \"io.x-k8s.kind.role\"}}\t{{.State}}".into()
        ]]
    );
    assert_eq!(state.stopped_nodes(), vec!["dev-worker"]);
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["docker", "ps"], "");
    assert_eq!(
        kind_with(&r).observe("dev", &Cancel::new()).unwrap(),
        ClusterState::Absent
    );
}

#[test]
fn docker_not_running_is_a_missing_prerequisite_with_the_fix() {
    let r = Arc::new(ScriptedRunner::new());
    r.fail(&["docker", "ps"], 1, &sample("info-no-daemon-28.2.2.stderr.txt"));
    let err = kind_with(&r).observe("dev", &Cancel::new()).unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("Docker engine is not running"), "{err}");
    assert!(err.help().unwrap().contains("start Docker"));
}

#[test]
fn kind_kubeconfig_is_checked_to_be_one() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(
        &["kind", "get", "kubeconfig"],
        &sample("get-kubeconfig-shape-kind-test-fixture.txt"),
    );
    let k = kind_with(&r).kubeconfig("dev", &Cancel::new()).unwrap();
    assert!(k.contains("current-context: kind-kind"));
    assert_eq!(r.calls(), vec![argv("kind get kubeconfig --name dev")]);
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["kind", "get", "kubeconfig"], "garbage\n");
    assert!(
        kind_with(&r)
            .kubeconfig("dev", &Cancel::new())
            .unwrap_err()
            .to_string()
            .contains("did not print a kubeconfig")
    );
}

fn install_spec() -> InstallSpec {
    InstallSpec {
        release: "postgresql".into(),
        namespace: "devenv-data".into(),
        chart: "postgres".into(),
        repository: Some("https://groundhog2k.github.io/helm-charts/".into()),
        version: Some("1.6.7".into()),
        values_files: vec![
            PathBuf::from("/p/helm-values/postgresql.yaml"),
            PathBuf::from("/state/dev/values/postgresql.devenv.yaml"),
        ],
        timeout: Duration::from_secs(300),
    }
}

/// Every value joined to its flag, release and chart after `--`: nothing from the configuration
/// can be read as a flag (a chart named `--post-renderer=…` would be a chart, not a flag).
const INSTALL: &str = "helm upgrade --install --repo=https://groundhog2k.github.io/helm-charts/ --version=1.6.7 --namespace=devenv-data --create-namespace --kubeconfig=/state/dev/kubeconfig --kube-context=kind-dev --values=/p/helm-values/postgresql.yaml --values=/state/dev/values/postgresql.devenv.yaml --timeout=300s";
const POSITIONALS: &str = "-- postgresql postgres";

#[test]
fn helm_3_waits_for_hooks_only_and_devenv_waits_for_readiness() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["helm", "version"], &sample("golden-helm3-version-short.txt"));
    r.ok(&["helm", "upgrade"], "");
    helm::Helm::new(r.clone())
        .upgrade_install(&target(), &install_spec(), &Cancel::new())
        .unwrap();
    assert_eq!(r.calls()[0], argv("helm version --short"));
    assert_eq!(r.calls()[1], argv(&format!("{INSTALL} {POSITIONALS}")));
}

#[test]
fn helm_4_gets_the_hook_only_wait_strategy_and_the_version_is_asked_once() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["helm", "version"], &sample("golden-helm4-version-short.txt"));
    r.ok(&["helm", "upgrade"], "");
    let h = helm::Helm::new(r.clone());
    h.upgrade_install(&target(), &install_spec(), &Cancel::new()).unwrap();
    h.upgrade_install(&target(), &install_spec(), &Cancel::new()).unwrap();
    let calls = r.calls();
    assert_eq!(calls.iter().filter(|c| c[1] == "version").count(), 1);
    assert_eq!(calls[1], argv(&format!("{INSTALL} --wait=hookOnly {POSITIONALS}")));
}

#[test]
fn helm_list_reads_real_output_of_helm_3_and_4() {
    let v4 = helm::parse_list(&sample("golden-helm4-list-json.txt")).unwrap();
    assert_eq!(
        v4,
        vec![ReleaseInfo {
            name: "test-release".into(),
            namespace: "default".into(),
            status: "deployed".into(),
            chart: "test-chart-1.0.0".into()
        }]
    );
    let v3 = helm::parse_list(&sample("list-all-namespaces-json-v3-mixed-tz.txt")).unwrap();
    assert_eq!(v3.len(), 3);
    assert_eq!(v3[2].chart, "airflow-0.19.0");
    assert!(helm::parse_list("").unwrap().is_empty());
    let err = helm::parse_list("Error: Kubernetes cluster unreachable").unwrap_err();
    assert!(err.to_string().contains("not a release list"), "{err}");
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["helm", "list"], "[]");
    helm::Helm::new(r.clone()).list(&target(), &Cancel::new()).unwrap();
    assert_eq!(
        r.calls()[0],
        argv(
            "helm list --all --all-namespaces --output json --kubeconfig=/state/dev/kubeconfig --kube-context=kind-dev"
        )
    );
}

#[test]
fn helm_versions_are_read_from_short_output() {
    assert_eq!(helm::parse_major(&sample("golden-helm3-version-short.txt")), Some(3));
    assert_eq!(helm::parse_major(&sample("golden-helm4-version-short.txt")), Some(4));
    assert_eq!(helm::parse_major("v3.14.2+gc309b6f"), Some(3));
    assert_eq!(helm::parse_major("garbage"), None);
}

#[test]
fn a_stuck_release_is_uninstalled_if_never_installed_and_rolled_back_if_mid_upgrade() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["helm"], "");
    let h = helm::Helm::new(r.clone());
    let rel = |status: &str| ReleaseInfo {
        name: "redis".into(),
        namespace: "devenv-data".into(),
        status: status.into(),
        chart: "redis-2.4.4".into(),
    };
    h.recover(&target(), &rel("pending-install"), &Cancel::new()).unwrap();
    h.recover(&target(), &rel("pending-upgrade"), &Cancel::new()).unwrap();
    let tail = " --namespace=devenv-data --kubeconfig=/state/dev/kubeconfig --kube-context=kind-dev -- redis";
    assert_eq!(
        r.calls(),
        vec![
            argv(&format!("helm uninstall{tail}")),
            argv(&format!("helm rollback{tail}"))
        ]
    );
}

#[test]
fn a_helm_failure_carries_its_stderr() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["helm", "version"], "v3.14.2+gc309b6f");
    r.fail(
        &["helm", "upgrade"],
        1,
        &sample("upgrade-another-operation-in-progress-v3.14.2.stderr.txt"),
    );
    let err = helm::Helm::new(r)
        .upgrade_install(&target(), &install_spec(), &Cancel::new())
        .unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string()
            .contains("another operation (install/upgrade/rollback) is in progress"),
        "{err}"
    );
    // The cause first, then the command, once.
    assert!(
        err.to_string()
            .starts_with("Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress\n"),
        "{err}"
    );
    assert_eq!(
        err.to_string()
            .matches("`helm upgrade --install --repo=https://groundhog2k.github.io/helm-charts/")
            .count(),
        1,
        "{err}"
    );
}

fn minikube(r: &Arc<ScriptedRunner>, driver: Option<&str>, export_context: bool) -> minikube::Minikube {
    minikube::Minikube {
        runner: r.clone(),
        driver: driver.map(String::from),
        export_context,
    }
}

#[test]
fn minikube_starts_a_profile_per_environment_with_the_pinned_kubernetes() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["minikube"], "");
    minikube(&r, Some("docker"), false)
        .create(&spec(), &Cancel::new())
        .unwrap();
    minikube(&r, None, true).create(&spec(), &Cancel::new()).unwrap();
    minikube(&r, None, true).delete("dev", &Cancel::new()).unwrap();
    let calls = r.calls();
    assert_eq!(
        calls[0],
        argv(
            "minikube start --profile dev --kubernetes-version v1.35.1 --driver docker --keep-context --wait all --wait-timeout 300s"
        )
    );
    assert_eq!(
        calls[1],
        argv("minikube start --profile dev --kubernetes-version v1.35.1 --wait all --wait-timeout 300s")
    );
    assert_eq!(calls[2], argv("minikube delete --profile dev"));
    minikube(&r, None, true).stop("dev", &Cancel::new()).unwrap();
    minikube(&r, None, true).start("dev", &Cancel::new()).unwrap();
    let calls = r.calls();
    assert_eq!(calls[3], argv("minikube stop --profile dev"));
    assert_eq!(calls[4], argv("minikube start --profile dev"));
}

#[test]
fn the_engine_stops_nodes_and_reads_the_ports_they_publish_by_inspect() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["docker", "ps"], "aaa\nbbb\n");
    // `docker inspect` output in the format devenv gives it (HostConfig.PortBindings as JSON).
    r.ok(
        &["docker", "inspect"],
        "/dev-control-plane\tdev\t{\"30080/tcp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"80\"}],\"6443/tcp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"41234\"}]}\n/other-worker\tother\t{}\n",
    );
    r.ok(&["docker", "stop"], "");
    let engine = devenv::adapters::docker::DockerCli {
        runner: r.clone(),
        program: "docker".into(),
        api: false,
    };
    use devenv::world::ContainerEngine;
    let mut p = engine.published(kind::CLUSTER_LABEL, &Cancel::new()).unwrap();
    p.sort_by_key(|p| p.container_port);
    assert_eq!(
        p.iter()
            .map(|p| (p.container.as_str(), p.owner.as_str(), p.host_port, p.container_port))
            .collect::<Vec<_>>(),
        [
            ("dev-control-plane", "dev", 41234, 6443),
            ("dev-control-plane", "dev", 80, 30080)
        ]
    );
    engine.stop(&["dev-control-plane".into()], &Cancel::new()).unwrap();
    let calls = r.calls();
    assert_eq!(
        calls[0],
        argv("docker ps --all --quiet --no-trunc --filter label=io.x-k8s.kind.cluster")
    );
    assert_eq!(calls[1][..3], argv("docker inspect --format")[..]);
    assert_eq!(calls[1][4..], argv("aaa bbb")[..]);
    assert_eq!(calls[2], argv("docker stop dev-control-plane"));
    // Anything but that format is an error, not a guess.
    assert!(devenv::adapters::docker::parse_published("not a line of it").is_err());
}

#[test]
fn minikube_profiles_are_read_strictly() {
    // The shape of `minikube profile list -o json` (first fields of each profile as minikube prints them).
    let doc = r#"{"invalid":[{"Name":"broken","Config":null}],"valid":[{"Name":"dev","Status":"OK","Config":{}},{"Name":"old","Status":"Stopped","Config":{}}]}"#;
    let p = minikube::parse_profiles(doc).unwrap();
    assert_eq!(
        p.iter()
            .map(|p| (p.name.as_str(), p.status.as_str()))
            .collect::<Vec<_>>(),
        [("dev", "OK"), ("old", "Stopped"), ("broken", "Invalid")]
    );
    // A truncated document (this verbatim sample is cut mid-object) is an error, not a guess.
    let err = minikube::parse_profiles(&sample("profile-list-json-v1.17dev.partial.txt")).unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["minikube", "profile"], doc);
    let m = minikube(&r, None, true);
    assert!(matches!(m.observe("dev", &Cancel::new()).unwrap(), ClusterState::Present { nodes } if nodes[0].running));
    assert_eq!(m.observe("old", &Cancel::new()).unwrap().stopped_nodes(), vec!["old"]);
    assert_eq!(m.observe("new", &Cancel::new()).unwrap(), ClusterState::Absent);
    assert_eq!(r.calls()[0], argv("minikube profile list --output json"));
}

#[test]
fn minikube_without_a_driver_gets_its_reason_explained() {
    let r = Arc::new(ScriptedRunner::new());
    r.fail(
        &["minikube", "start"],
        1,
        &sample("start-fail-drv-not-detected-v1.37.0.combined.txt"),
    );
    let err = minikube(&r, None, true).create(&spec(), &Cancel::new()).unwrap_err();
    assert!(err.to_string().contains("DRV_NOT_DETECTED"), "{err}");
    assert!(err.help().unwrap().contains("install and start Docker"), "{err:?}");
}

#[test]
fn an_existing_clusters_kubeconfig_is_its_minified_context() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(
        &["kubectl", "config", "view"],
        &sample("config-view-minify-kind-cluster.txt"),
    );
    let e = existing::Existing {
        runner: r.clone(),
        context: "kind-kind".into(),
        kubeconfig: "/state/dev/kubeconfig".into(),
    };
    assert!(e.kubeconfig("dev", &Cancel::new()).unwrap().contains("clusters:"));
    assert_eq!(
        r.calls()[0],
        argv("kubectl config view --minify --flatten --context kind-kind")
    );
    assert_eq!(e.context("dev"), "kind-kind");
    assert_eq!(
        e.delete("dev", &Cancel::new()).unwrap_err().exit_code(),
        2,
        "devenv never deletes it"
    );
}

#[test]
fn an_existing_contexts_nodes_and_a_missing_context() {
    let nodes = r#"{"items":[{"metadata":{"name":"cp","labels":{"node-role.kubernetes.io/control-plane":""}},"status":{"conditions":[{"type":"Ready","status":"True"}]}},{"metadata":{"name":"w1","labels":{}},"status":{"conditions":[{"type":"Ready","status":"False"}]}}]}"#;
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["kubectl"], nodes);
    let e = existing::Existing {
        runner: r.clone(),
        context: "docker-desktop".into(),
        kubeconfig: "/state/dev/kubeconfig".into(),
    };
    assert_eq!(e.observe("dev", &Cancel::new()).unwrap().stopped_nodes(), vec!["w1"]);
    // Through devenv's copy of the context, as every other call of the command.
    assert_eq!(
        r.calls()[0],
        argv("kubectl --kubeconfig /state/dev/kubeconfig --context docker-desktop get nodes --output json")
    );
    let r = Arc::new(ScriptedRunner::new());
    r.fail(&["kubectl"], 1, "error: context \"nope\" does not exist");
    let err = existing::Existing {
        runner: r,
        context: "nope".into(),
        kubeconfig: "/state/dev/kubeconfig".into(),
    }
    .observe("dev", &Cancel::new())
    .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.help().unwrap().contains("kubectl config get-contexts"));
}

#[test]
fn kind_lists_its_clusters_from_real_output() {
    assert_eq!(
        kind::parse_clusters(&sample("get-clusters-two-docs.txt")),
        ["kind", "kind-2"]
    );
    // With no cluster, kind prints its message on stderr and nothing on stdout.
    assert!(sample("get-clusters-none-v0.7.0.stderr.txt").contains("No kind clusters found."));
    assert!(kind::parse_clusters("").is_empty());
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["kind", "get", "clusters"], &sample("get-clusters-two-docs.txt"));
    assert_eq!(kind_with(&r).list(&Cancel::new()).unwrap(), ["kind", "kind-2"]);
}

#[test]
fn leftover_nodes_are_force_removed_with_their_volumes() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["docker", "rm"], "");
    docker::DockerCli {
        runner: r.clone(),
        program: "docker".into(),
        api: false,
    }
    .remove(&["dev-control-plane".into()], &Cancel::new())
    .unwrap();
    assert_eq!(r.calls()[0], argv("docker rm --force --volumes dev-control-plane"));
}

#[test]
fn a_throwaway_container_gets_every_value_as_its_own_argument_and_no_network() {
    let r = Arc::new(ScriptedRunner::new());
    r.ok(&["docker", "run"], "");
    let cli = docker::DockerCli {
        runner: r.clone(),
        program: "docker".into(),
        api: false,
    };
    let spec = devenv::world::RunSpec {
        image: "docker.io/library/busybox:1.37.0".into(),
        user: "0:0".into(),
        mounts: vec![("/home/ana/.local/state/devenv/dev/data".into(), "/devenv-data".into())],
        entrypoint: "rm".into(),
        args: vec!["-rf".into(), "--".into(), "/devenv-data/postgresql".into()],
    };
    cli.run(&spec, &Cancel::new()).unwrap();
    assert_eq!(
        r.calls()[0],
        argv(
            "docker run --rm --network none --user 0:0 --mount type=bind,source=/home/ana/.local/state/devenv/dev/data,target=/devenv-data --entrypoint rm docker.io/library/busybox:1.37.0 -rf -- /devenv-data/postgresql"
        )
    );
    // `--mount` is comma-separated: a path with a comma is refused, never read as an option.
    let bad = devenv::world::RunSpec {
        mounts: vec![("/tmp/a,readonly=false".into(), "/x".into())],
        ..spec
    };
    assert!(cli.run(&bad, &Cancel::new()).unwrap_err().to_string().contains("comma"));
}

#[test]
fn the_engine_api_is_used_only_where_it_reaches_the_engine_the_docker_cli_uses() {
    let home = crate::common::TempDir::new("docker-context");
    let vars = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        let mut v: std::collections::BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.insert("HOME".into(), home.path().display().to_string());
        v
    };
    let usable = |v: &std::collections::BTreeMap<String, String>| docker::api_reaches_cli_engine("docker", v);
    // No config, no variables: the default socket, as the CLI.
    assert!(usable(&vars(&[])));
    assert!(usable(&vars(&[("DOCKER_HOST", "unix:///run/user/1000/docker.sock")])));
    assert!(
        !usable(&vars(&[("DOCKER_HOST", "ssh://me@buildbox")])),
        "ssh is the CLI's"
    );
    assert!(!usable(&vars(&[
        ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
        ("DOCKER_TLS_VERIFY", "1")
    ])));
    assert!(!usable(&vars(&[("DOCKER_CONTEXT", "colima")])));
    assert!(usable(&vars(&[("DOCKER_CONTEXT", "default")])));
    // A context selected with `docker context use` (Docker Desktop on Linux, colima, rootless).
    home.write(
        ".docker/config.json",
        r#"{"auths": {}, "currentContext": "desktop-linux"}"#,
    );
    assert!(!usable(&vars(&[])));
    assert!(
        usable(&vars(&[("DOCKER_HOST", "unix:///var/run/docker.sock")])),
        "DOCKER_HOST wins over it"
    );
    home.write(".docker/config.json", r#"{"auths": {}, "currentContext": "default"}"#);
    assert!(usable(&vars(&[])));
    assert!(
        !docker::api_reaches_cli_engine("podman", &vars(&[])),
        "podman goes through its CLI"
    );
}

#[test]
fn garbage_from_docker_ps_is_an_error_never_node_names() {
    assert_eq!(
        docker::parse_nodes("dev-control-plane\tcontrol-plane\trunning\ndev-worker\tworker\texited\n").unwrap(),
        vec![
            devenv::world::NodeState {
                name: "dev-control-plane".into(),
                role: "control-plane".into(),
                running: true
            },
            devenv::world::NodeState {
                name: "dev-worker".into(),
                role: "worker".into(),
                running: false
            },
        ]
    );
    for garbage in [
        "Error response from daemon: client version 1.52 is too new\n",
        "<html><body>502 Bad Gateway</body></html>",
        "--rm\tx\trunning\n",
        "dev\tcontrol-plane\tfloating\n",
    ] {
        let err = docker::parse_nodes(garbage).unwrap_err();
        assert!(err.to_string().contains("is not a container"), "{garbage}: {err}");
        assert!(err.help().is_some());
    }
}

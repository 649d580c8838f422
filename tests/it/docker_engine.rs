//! Against the REAL Docker engine (no cluster: kind nodes need privileged containers, which this
//! machine refuses). Containers labelled exactly like kind's nodes, from an image imported locally
//! from busybox (nothing is pulled), stand in for a cluster's nodes.
//!
//! Needs `dockerd` running and `busybox` (busybox-static) installed; `.ci/run` provides both. With
//! CI set, a missing engine fails the test; elsewhere the test says it did not run.

use devenv::adapters::{docker::DockerCli, kind};
use devenv::exec::Cancel;
use devenv::process::{Cmd, Runner, SystemRunner};
use devenv::world::{ClusterProvider, ClusterState, ContainerEngine};
use std::sync::Arc;

const IMAGE: &str = "devenv-test-node:busybox";

fn sh(args: &[&str]) -> Result<String, String> {
    let cmd = Cmd::new(args[0])
        .args(args[1..].iter().copied())
        .timeout(std::time::Duration::from_secs(120));
    SystemRunner
        .run(&cmd, &Cancel::new())
        .map(|o| o.stdout)
        .map_err(|e| e.to_string())
}

/// True when the engine answers; under CI its absence is a failure, never a skip.
fn engine_available() -> bool {
    match sh(&["docker", "info", "--format", "{{.ServerVersion}}"]) {
        Ok(_) => true,
        Err(e) if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") => {
            panic!("CI is set but the Docker engine does not answer: {e}\n.ci/run must install and start dockerd")
        }
        Err(e) => {
            eprintln!("NOT RUN: this test needs a running Docker engine ({e})");
            false
        }
    }
}

/// An image with busybox as its only file, imported from a tar stream: no registry involved.
fn ensure_image() {
    if sh(&["docker", "image", "inspect", IMAGE]).is_ok() {
        return;
    }
    let dir = crate::common::TempDir::new("rootfs");
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox-static is installed");
    std::fs::copy(busybox, dir.path().join("bin/busybox")).unwrap();
    let tar = sh(&[
        "tar",
        "-C",
        &dir.path().display().to_string(),
        "-cf",
        &dir.path().join("../rootfs.tar").display().to_string(),
        ".",
    ]);
    tar.unwrap();
    let tarball = dir.path().join("../rootfs.tar");
    sh(&["docker", "import", &tarball.display().to_string(), IMAGE]).unwrap();
    let _ = std::fs::remove_file(tarball);
}

/// Node containers for one fake cluster, removed on drop.
struct FakeCluster {
    name: String,
}

impl FakeCluster {
    fn new(tag: &str) -> Self {
        let name = format!("devenvtest-{tag}-{}", std::process::id());
        let c = FakeCluster { name };
        for (suffix, role) in [("control-plane", "control-plane"), ("worker", "worker")] {
            sh(&[
                "docker",
                "run",
                "--detach",
                "--name",
                &format!("{}-{suffix}", c.name),
                "--label",
                &format!("{}={}", kind::CLUSTER_LABEL, c.name),
                "--label",
                &format!("{}={role}", kind::ROLE_LABEL),
                "--network",
                "none",
                IMAGE,
                "/bin/busybox",
                "sleep",
                "3600",
            ])
            .unwrap();
        }
        c
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        let _ = sh(&[
            "docker",
            "rm",
            "--force",
            &format!("{}-control-plane", self.name),
            &format!("{}-worker", self.name),
        ]);
    }
}

/// `api`: the node containers through the engine's API (what `up` uses when it reaches the
/// CLI's engine), else through `docker ps`.
fn kind_provider(api: bool) -> kind::Kind {
    let runner: Arc<dyn Runner> = Arc::new(SystemRunner);
    let engine = Arc::new(DockerCli {
        runner: runner.clone(),
        program: "docker".into(),
        api,
    });
    kind::Kind {
        runner: runner.clone(),
        engine,
        transport: Arc::new(devenv::adapters::image_api::DockerApi { runner }),
        logs_dir: std::env::temp_dir(),
        kubeconfig: None,
    }
}

#[test]
fn real_engine_kind_nodes_are_found_by_label_and_an_exited_one_is_started_again() {
    if !engine_available() {
        return;
    }
    ensure_image();
    for api in [true, false] {
        let fake = FakeCluster::new(if api { "nodes-api" } else { "nodes-cli" });
        let kind = kind_provider(api);
        let ClusterState::Present { mut nodes } = kind.observe(&fake.name, &Cancel::new()).unwrap() else {
            panic!("not found (api: {api})")
        };
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            nodes
                .iter()
                .map(|n| (n.name.clone(), n.role.as_str(), n.running))
                .collect::<Vec<_>>(),
            [
                (format!("{}-control-plane", fake.name), "control-plane", true),
                (format!("{}-worker", fake.name), "worker", true)
            ],
            "api: {api}"
        );
        assert_eq!(
            kind.observe("devenvtest-no-such-cluster", &Cancel::new()).unwrap(),
            ClusterState::Absent
        );

        sh(&["docker", "stop", "--time", "0", &format!("{}-worker", fake.name)]).unwrap();
        let state = kind.observe(&fake.name, &Cancel::new()).unwrap();
        assert_eq!(
            state.stopped_nodes(),
            vec![format!("{}-worker", fake.name)],
            "api: {api}"
        );

        kind.start(&fake.name, &Cancel::new()).unwrap();
        assert!(
            kind.observe(&fake.name, &Cancel::new())
                .unwrap()
                .stopped_nodes()
                .is_empty()
        );
    }
}

#[test]
fn real_engine_status_and_plan_report_an_exited_node() {
    if !engine_available() {
        return;
    }
    ensure_image();
    let fake = FakeCluster::new("status");
    sh(&["docker", "stop", "--time", "0", &format!("{}-control-plane", fake.name)]).unwrap();
    let project = crate::common::TempDir::new("real-status");
    let state = crate::common::TempDir::new("real-status-state");
    // The real kind world (no simulation): only `docker ps` runs, since the nodes are not all up.
    let out = crate::common::run_in(
        project.path(),
        state.path(),
        None,
        &["status", "-n", &fake.name],
        Cancel::new(),
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!("node {}-control-plane", fake.name)) && out.stdout.contains("exited"),
        "{out:?}"
    );
    assert!(out.stderr.contains("has exited"), "{out:?}");
    let out = crate::common::run_in(
        project.path(),
        state.path(),
        None,
        &["plan", "-n", &fake.name],
        Cancel::new(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("^ start") && out.stdout.contains("-control-plane have exited"),
        "{out:?}"
    );
}

#[test]
fn real_engine_an_unreachable_engine_is_exit_3_with_the_fix() {
    // A DOCKER_HOST nobody listens on: the docker CLI's own error, mapped to a prerequisite.
    let engine = DockerCli {
        runner: Arc::new(EnvRunner),
        program: "docker".into(),
        api: false,
    };
    let err = engine
        .containers_labelled(kind::CLUSTER_LABEL, "x", &Cancel::new())
        .unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
    assert!(err.help().unwrap().contains("start Docker"), "{err:?}");
}

/// Runs commands with DOCKER_HOST pointing at a socket that does not exist.
struct EnvRunner;

impl Runner for EnvRunner {
    fn run(&self, cmd: &Cmd, cancel: &Cancel) -> Result<devenv::process::Output, devenv::process::RunError> {
        let mut c = cmd.clone();
        c.env
            .push(("DOCKER_HOST".into(), "unix:///nonexistent/devenv-test.sock".into()));
        SystemRunner.run(&c, cancel)
    }
}

#[test]
fn real_engine_down_removes_node_containers_that_kind_delete_left_behind() {
    if !engine_available() {
        return;
    }
    ensure_image();
    let fake = FakeCluster::new("leftover");
    // A stand-in `kind` whose delete "succeeds" without removing anything, as after a crash mid-delete.
    let bin = crate::common::TempDir::new("fakebin");
    bin.write("kind", "#!/bin/sh\necho \"fake kind $*\" >&2\nexit 0\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.path().join("kind"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let project = crate::common::TempDir::new("leftover-proj");
    let state = crate::common::TempDir::new("leftover-state");
    let out = crate::common::devenv(project.path(), state.path())
        .args(["down", "-n", &fake.name])
        .env(
            "PATH",
            format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default()),
        )
        .output();
    let err = &out.stderr;
    assert_eq!(out.code, 0, "{err}");
    assert!(err.contains("remove leftover node(s)"), "{err}");
    let left = sh(&[
        "docker",
        "ps",
        "--all",
        "--quiet",
        "--filter",
        &format!("label={}={}", kind::CLUSTER_LABEL, fake.name),
    ])
    .unwrap();
    assert!(left.trim().is_empty(), "containers left: {left}");
}

#[test]
fn real_engine_facts_are_read_through_its_api() {
    if !engine_available() {
        return;
    }
    use devenv::world::Host;
    let vars: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let host = devenv::adapters::host::RealHost::new(Arc::new(SystemRunner), &vars, std::path::Path::new("."));
    let facts = host.engine(&Cancel::new()).expect("the engine answers");
    let cli = |f: &str| sh(&["docker", "info", "--format", f]).unwrap().trim().to_string();
    assert_eq!(facts.server_version, cli("{{.ServerVersion}}"));
    assert_eq!(facts.cgroup_version, cli("{{.CgroupVersion}}"));
    assert_eq!(facts.cpus.to_string(), cli("{{.NCPU}}"));
    assert_eq!(facts.root_dir, cli("{{.DockerRootDir}}"));
    assert!(facts.api_version.starts_with("1."), "{facts:?}");
    assert!(host.free_bytes(&facts.root_dir).unwrap() > 0);
}

/// A free port on 127.0.0.1 now.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn real_engine_published_ports_are_read_from_the_nodes_running_or_stopped_and_doctor_names_their_owner() {
    if !engine_available() {
        return;
    }
    ensure_image();
    let name = format!("devenvtest-ports-{}", std::process::id());
    let node = format!("{name}-control-plane");
    let (http, https, pg, redis) = (free_port(), free_port(), free_port(), free_port());
    let mut run = vec![
        "docker".to_string(),
        "run".into(),
        "--detach".into(),
        "--name".into(),
        node.clone(),
        "--label".into(),
        format!("{}={name}", kind::CLUSTER_LABEL),
        "--label".into(),
        format!("{}=control-plane", kind::ROLE_LABEL),
    ];
    for (host, cp) in [(http, 30080), (https, 30443), (pg, 30432), (redis, 30379)] {
        run.push("--publish".into());
        run.push(format!("127.0.0.1:{host}:{cp}/tcp"));
    }
    // A node that ends on SIGTERM, as kind's systemd does.
    run.extend([
        IMAGE.to_string(),
        "/bin/busybox".into(),
        "sh".into(),
        "-c".into(),
        "trap 'exit 0' TERM; while true; do /bin/busybox sleep 1; done".into(),
    ]);
    let argv: Vec<&str> = run.iter().map(String::as_str).collect();
    sh(&argv).unwrap();
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = sh(&["docker", "rm", "--force", &self.0]);
        }
    }
    let _gone = Gone(node.clone());

    let engine = DockerCli {
        runner: Arc::new(SystemRunner),
        program: "docker".into(),
        api: false,
    };
    let mine = |list: Vec<devenv::world::Published>| -> Vec<(u16, u16, String)> {
        let mut v: Vec<_> = list
            .into_iter()
            .filter(|p| p.owner == name)
            .map(|p| (p.container_port, p.host_port, p.host_ip))
            .collect();
        v.sort();
        v
    };
    let want = vec![
        (30080, http, "127.0.0.1".to_string()),
        (30379, redis, "127.0.0.1".to_string()),
        (30432, pg, "127.0.0.1".to_string()),
        (30443, https, "127.0.0.1".to_string()),
    ];
    assert_eq!(
        mine(engine.published(kind::CLUSTER_LABEL, &Cancel::new()).unwrap()),
        want
    );

    // `devenv stop` on the real engine: the node stops and keeps its ports.
    let project = crate::common::TempDir::new("real-ports");
    let state = crate::common::TempDir::new("real-ports-state");
    let out = crate::common::run_in(
        project.path(),
        state.path(),
        None,
        &["-n", &name, "stop"],
        Cancel::new(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let kind = kind_provider(false);
    assert_eq!(
        kind.observe(&name, &Cancel::new()).unwrap().stopped_nodes(),
        vec![node.clone()]
    );
    assert_eq!(
        mine(engine.published(kind::CLUSTER_LABEL, &Cancel::new()).unwrap()),
        want,
        "a stopped node keeps its ports"
    );

    // Started again, it holds them: `doctor` for another environment that maps the same ports
    // names the cluster; for its own, they are its own.
    kind.start(&name, &Cancel::new()).unwrap();
    let config = devenv::config::default_text("kind-config.yaml")
        .unwrap()
        .replace("hostPort: 80\n", &format!("hostPort: {http}\n"))
        .replace("hostPort: 443\n", &format!("hostPort: {https}\n"))
        .replace("hostPort: 15432\n", &format!("hostPort: {pg}\n"))
        .replace("hostPort: 16379\n", &format!("hostPort: {redis}\n"));
    project.write("kind-config.yaml", &config);
    let other = crate::common::run_in(
        project.path(),
        state.path(),
        None,
        &["-n", "devenvtest-other", "doctor"],
        Cancel::new(),
    );
    assert!(
        other.stdout.contains(&format!("host port {pg} "))
            && other.stdout.contains(&format!("held by kind cluster `{name}`")),
        "{other:?}"
    );
    let own = crate::common::run_in(
        project.path(),
        state.path(),
        None,
        &["-n", &name, "doctor"],
        Cancel::new(),
    );
    assert!(
        own.stdout.contains(&format!(
            "127.0.0.1:{pg} is this environment's own (published by its node {node})"
        )),
        "{own:?}"
    );
}

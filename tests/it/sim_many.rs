//! Many environments on one machine, stop and start, coming back after a restart, half-made
//! clusters (issue 17), on the SIMULATED world (src/sim/: its kind nodes publish host ports as
//! Docker does, and a second publish of one fails in kind's words).

use crate::common::Lab;

fn helm_installs(lab: &Lab, since: usize) -> Vec<String> {
    lab.world.calls()[since..]
        .iter()
        .filter(|c| c.op == "helm.upgrade_install")
        .map(|c| c.target.clone())
        .collect()
}

fn export(stdout: &str, var: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("export {var}='")))
        .map(|v| v.trim_end_matches('\'').to_string())
        .unwrap_or_else(|| panic!("no {var} in {stdout}"))
}

#[test]
fn sim_two_environments_run_at_once_each_on_its_own_host_ports() {
    let lab = Lab::new("twoenvs");
    assert_eq!(lab.run(&["up"]).code, 0);
    let other = lab.run(&["-n", "other", "up"]);
    assert_eq!(other.code, 0, "beside a running environment: {other:?}");
    let state = lab.world.state();
    let ports = |c: &str| -> Vec<u16> { state.clusters[c].ports.iter().map(|(_, h)| *h).collect() };
    assert_eq!(
        ports("devenv"),
        [80, 443, 15432, 16379],
        "the default environment keeps the familiar ports"
    );
    assert!(
        ports("other").iter().all(|p| !ports("devenv").contains(p)),
        "{:?} vs {:?}",
        ports("other"),
        ports("devenv")
    );
    // `env`, `status` and `test` use the environment's own ports.
    let env = lab.run(&["-n", "other", "env"]).stdout;
    let redis = export(&env, "REDIS_URL");
    assert!(!redis.contains(":16379"), "{env}");
    let redis_port: u16 = redis
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ports("other").contains(&redis_port), "{redis} {:?}", ports("other"));
    let status = lab.run(&["-n", "other", "status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.contains(&format!("127.0.0.1:{redis_port}")), "{status:?}");
    assert_eq!(lab.run(&["-n", "other", "test"]).code, 0);
    // A second look chooses nothing new: the same ports, nothing to do.
    let again = lab.run(&["-n", "other", "up"]);
    assert!(again.stderr.contains("nothing to do"), "{again:?}");
    assert_eq!(export(&lab.run(&["-n", "other", "env"]).stdout, "REDIS_URL"), redis);
    // Gone with its cluster, then chosen anew.
    assert_eq!(lab.run(&["-n", "other", "down"]).code, 0);
    assert!(!lab.state.path().join("other/ports.json").exists());
}

#[test]
fn sim_run_ephemeral_beside_a_running_environment() {
    let lab = Lab::new("ephbeside");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let out = lab.run(&["run", "--ephemeral", "--", "true"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        lab.world.state().clusters.len(),
        1,
        "the ephemeral one is gone, the other kept"
    );
}

#[test]
fn sim_ports_a_user_wrote_down_are_kept_and_a_clash_names_the_environment_holding_them() {
    let lab = Lab::new("pinned");
    let kind = devenv::config::default_text("kind-config.yaml")
        .unwrap()
        .replace("hostPort: 80\n", "hostPort: 8080\n");
    lab.project.write("kind-config.yaml", &kind);
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let out = lab.run(&["-n", "other", "up", "--no-test"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("host port 8080") && out.stderr.contains("held by kind cluster `devenv`"),
        "{out:?}"
    );
    assert_eq!(lab.world.state().clusters.len(), 1, "nothing was created");
}

#[test]
fn sim_recreate_and_doctor_on_a_running_environment_do_not_block_on_its_own_ports() {
    let lab = Lab::new("ownports");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let doctor = lab.run(&["doctor"]);
    assert!(
        doctor.stdout.contains("127.0.0.1:15432 is this environment's own"),
        "{doctor:?}"
    );
    assert!(!doctor.stdout.contains("✗ port"), "{doctor:?}");
    let out = lab.run(&["up", "--recreate", "--yes", "--no-test"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(lab.mutations().iter().any(|m| m == "cluster.delete devenv"));
}

#[test]
fn sim_stop_keeps_everything_and_start_waits_for_it_and_runs_the_checks_without_helm() {
    let lab = Lab::new("stopstart");
    assert_eq!(lab.run(&["up"]).code, 0);
    lab.world.db_write("devenv", "kept-row");
    let stop = lab.run(&["stop"]);
    assert_eq!(stop.code, 0, "{stop:?}");
    assert!(lab.world.state().clusters["devenv"].nodes.iter().all(|n| !n.running));
    let status = lab.run(&["status"]);
    assert_eq!(status.code, 1, "{status:?}");
    assert!(
        status.stdout.contains("cluster:     stopped") && !status.stdout.contains("different configuration"),
        "{status:?}"
    );
    let plan = lab.run(&["plan"]);
    assert!(
        plan.stdout.contains("^ start") && !plan.stdout.contains("+ create   postgresql"),
        "a stopped cluster's components are not planned anew: {plan:?}"
    );
    let before = lab.world.calls().len();
    let start = lab.run(&["start"]);
    assert_eq!(start.code, 0, "{start:?}");
    assert!(helm_installs(&lab, before).is_empty(), "start ran helm: {start:?}");
    let since = &lab.world.calls()[before..];
    for c in ["ingress-nginx", "postgresql", "redis"] {
        assert!(
            since.iter().any(|x| x.op == "kube.wait_ready" && x.target == c),
            "{c} was not waited for: {start:?}"
        );
    }
    assert!(
        start
            .stderr
            .lines()
            .any(|l| l.contains("postgresql 127.0.0.1:15432") && l.contains(" ok ")),
        "the checks ran: {start:?}"
    );
    assert_eq!(lab.world.db_rows("devenv"), ["kept-row"]);
    assert_eq!(lab.run(&["status"]).code, 0);
}

#[test]
fn sim_a_node_stopped_by_a_docker_restart_is_healed_by_up_without_reinstalling() {
    let lab = Lab::new("heal");
    assert_eq!(lab.run(&["up"]).code, 0);
    // Docker restarted: the node container exited; the API server comes back on a new port.
    lab.world
        .with(|s| {
            s.clusters.get_mut("devenv").unwrap().nodes[0].running = false;
            s.host.api_server = Some("https://127.0.0.1:40123".into());
        })
        .unwrap();
    let before = lab.world.calls().len();
    let up = lab.run(&["up"]);
    assert_eq!(up.code, 0, "{up:?}");
    assert!(helm_installs(&lab, before).is_empty(), "reinstalled: {up:?}");
    assert!(lab.mutations().contains(&"cluster.start devenv".to_string()));
    let kubeconfig = std::fs::read_to_string(lab.state.path().join("devenv/kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains("https://127.0.0.1:40123"),
        "a fresh kubeconfig: {kubeconfig}"
    );
    assert!(
        up.stderr.contains("smoke tests") && !up.stderr.contains("nothing to do"),
        "{up:?}"
    );
}

#[test]
fn sim_a_half_made_cluster_is_named_by_plan_and_status_and_replaced_by_up() {
    let lab = Lab::new("halfmade");
    // What a double Ctrl-C during the create leaves: the node container, devenv's marker, no
    // record, no kubeconfig.
    lab.world
        .with(|s| {
            s.clusters.insert(
                "devenv".into(),
                devenv::sim::SimCluster {
                    nodes: vec![devenv::world::NodeState {
                        name: "devenv-worker".into(),
                        role: "worker".into(),
                        running: true,
                    }],
                    ..Default::default()
                },
            )
        })
        .unwrap();
    lab.state
        .write("devenv/creating", "a cluster create by devenv is under way\n");
    let plan = lab.run(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("half-made"), "{plan:?}");
    let status = lab.run(&["status"]);
    assert_eq!(status.code, 1, "{status:?}");
    assert!(status.stdout.contains("cluster:     half-made"), "{status:?}");
    assert!(!status.stderr.contains("kubeconfig"), "{status:?}");
    let up = lab.run(&["up", "--no-test"]);
    assert_eq!(up.code, 0, "no --yes needed to replace it: {up:?}");
    assert!(lab.mutations().iter().any(|m| m == "cluster.delete devenv"));
    assert!(!lab.state.path().join("devenv/creating").exists());
    assert_eq!(lab.run(&["status"]).code, 0);
}

#[test]
fn sim_kind_on_podman_is_refused_before_anything_is_made_and_doctor_says_why() {
    let project = crate::common::TempDir::new("podman");
    let state = crate::common::TempDir::new("podman-state");
    let file = state.path().join("world.json");
    devenv::sim::SimWorld::open(&file).unwrap();
    let out = crate::common::devenv(project.path(), state.path())
        .simulate(&file)
        .env("KIND_EXPERIMENTAL_PROVIDER", "podman")
        .args(["up"])
        .output();
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("KIND_EXPERIMENTAL_PROVIDER=podman") && out.stderr.contains("through Docker only"),
        "{out:?}"
    );
    assert!(devenv::sim::SimWorld::open(&file).unwrap().state().clusters.is_empty());
    let doctor = crate::common::devenv(project.path(), state.path())
        .simulate(&file)
        .env("KIND_EXPERIMENTAL_PROVIDER", "podman")
        .args(["doctor"])
        .output();
    assert_eq!(doctor.code, 3, "{doctor:?}");
    assert!(doctor.stdout.contains("✗ kind provider"), "{doctor:?}");
}

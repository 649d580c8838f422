//! `up`, `plan`, `status`, `down` end to end, in-process, on the SIMULATED world (no cluster,
//! chart or container is involved; see src/sim/). Latencies are set per operation so
//! that concurrency and interrupts can be observed.

use crate::common::Lab;
use devenv::error::Signal;
use devenv::exec::{Cancel, Reason};
use std::time::{Duration, Instant};

fn overlap(a: &devenv::sim::Call, b: &devenv::sim::Call) -> bool {
    a.start_ms < b.end_ms && b.start_ms < a.end_ms
}

#[test]
fn sim_up_installs_components_concurrently_and_a_second_up_changes_nothing() {
    let lab = Lab::new("up");
    lab.world.set_latency("helm.upgrade_install", 150);
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("environment `devenv` is up"), "{out:?}");
    assert!(
        out.stderr.contains("ingress-nginx was retired upstream"),
        "the retirement notice is shown on first install"
    );

    let installs: Vec<_> = lab
        .world
        .calls()
        .into_iter()
        .filter(|c| c.op == "helm.upgrade_install")
        .collect();
    assert_eq!(installs.len(), 3);
    assert!(
        overlap(&installs[0], &installs[1]) && overlap(&installs[1], &installs[2]),
        "installs ran one after another: {installs:?}"
    );

    let before = lab.mutations().len();
    let t = Instant::now();
    let again = lab.run(&["up"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(again.stderr.contains("up to date: nothing to do"), "{again:?}");
    assert!(
        !again.stderr.contains("retired"),
        "the notice is shown once per machine"
    );
    assert_eq!(
        lab.mutations().len(),
        before,
        "a no-op up made a change: {:?}",
        &lab.mutations()[before..]
    );
}

#[test]
fn sim_changing_one_values_file_upgrades_only_that_component() {
    let lab = Lab::new("values");
    assert_eq!(lab.run(&["up"]).code, 0);
    let before = lab.mutations().len();
    lab.project.write(
        "helm-values/redis.yaml",
        "service:\n  type: NodePort\nresources:\n  requests:\n    memory: 64Mi\n",
    );
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    let changed: Vec<String> = lab.mutations()[before..].to_vec();
    assert!(
        changed.contains(&"helm.upgrade_install redis".to_string()),
        "{changed:?}"
    );
    assert!(
        !changed
            .iter()
            .any(|c| c.contains("postgresql") || c.contains("ingress") || c.starts_with("cluster.")),
        "{changed:?}"
    );
}

#[test]
fn sim_a_changed_kind_config_is_kept_and_explained_until_recreate() {
    let lab = Lab::new("recreate");
    assert_eq!(lab.run(&["up"]).code, 0);
    let kind = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/kind-config.yaml")).unwrap();
    // A node label: the cluster differs, its host ports (which the smoke checks use) do not.
    lab.project.write(
        "kind-config.yaml",
        &kind.replace(
            "  - role: control-plane\n",
            "  - role: control-plane\n    labels:\n      tier: dev\n",
        ),
    );
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("devenv up --recreate"), "{out:?}");
    assert!(!lab.mutations().iter().any(|m| m.starts_with("cluster.delete")));
    // Not on a terminal and no --yes: nothing is deleted.
    let out = lab.run(&["up", "--recreate"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("--recreate deletes cluster `devenv`: PostgreSQL's data stay in")
            && out.stderr.contains("help: run again with --yes"),
        "{out:?}"
    );
    assert!(!lab.mutations().iter().any(|m| m.starts_with("cluster.delete")));
    let out = lab.run(&["up", "--recreate", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let m = lab.mutations();
    let del = m.iter().position(|c| c == "cluster.delete devenv").expect("deleted");
    assert!(m[del..].iter().any(|c| c == "cluster.create devenv"), "{m:?}");
    let out = lab.run(&["up"]);
    assert!(out.stderr.contains("nothing to do"), "{out:?}");
}

#[test]
fn sim_down_is_idempotent_and_purge_removes_state() {
    let lab = Lab::new("down");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let kubeconfig = lab.state.path().join("devenv/kubeconfig");
    assert!(kubeconfig.is_file());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = lab.run(&["down"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(lab.world.state().clusters.is_empty());
    assert!(!kubeconfig.exists());
    let out = lab.run(&["down", "--purge"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("nothing to do"), "{out:?}");
    assert!(!lab.state.path().join("devenv").exists());
}

#[test]
fn sim_a_failed_install_lets_its_siblings_finish_keeps_their_work_and_the_next_up_converges() {
    let lab = Lab::new("fault");
    lab.world.set_latency("helm.upgrade_install", 400);
    lab.world.set_latency("kube.set_applied", 0);
    // Worded as the helm adapter words a failed helm: the cause, then the command.
    lab.world.inject(
        "helm.upgrade_install",
        Some("redis"),
        "Error: context deadline exceeded\n  `helm upgrade --install redis` exited with status 1",
        1,
    );
    let t = Instant::now();
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("error: redis: Error: context deadline exceeded\n"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("create postgresql") && out.stderr.contains(" ✓ create postgresql"),
        "the sibling finished: {out:?}"
    );
    assert!(out.stderr.contains("help:"), "{out:?}");
    assert!(out.stderr.contains("smoke tests (skipped)"), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    // The cluster was created completely, so it is kept; the next up only finishes the job.
    assert!(lab.world.state().clusters.contains_key("devenv"));
    let before = lab.mutations().len();
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    let after = lab.mutations()[before..].to_vec();
    assert!(!after.iter().any(|m| m.starts_with("cluster.")), "{after:?}");
    assert!(after.contains(&"helm.upgrade_install redis".to_string()), "{after:?}");
    assert_eq!(lab.run(&["status"]).code, 0);
}

#[test]
fn sim_an_interrupt_during_cluster_create_removes_the_half_made_cluster_and_exits_130() {
    let lab = Lab::new("sigint-create");
    lab.world.set_latency("cluster.create", 5_000);
    let cancel = Cancel::new();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.cancel(Reason::Signal(Signal::Int));
    });
    let t = Instant::now();
    let out = lab.run_with(&["up"], cancel);
    assert_eq!(out.code, 130, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert!(out.stderr.contains("interrupted by SIGINT"), "{out:?}");
    assert!(
        out.stderr
            .contains("rolled back: cluster devenv (half-created by this run)"),
        "{out:?}"
    );
    assert!(lab.world.state().clusters.is_empty());
    lab.world.set_latency("cluster.create", 0);
    assert_eq!(lab.run(&["up"]).code, 0);
}

#[test]
fn sim_an_interrupt_during_installs_exits_130_and_the_next_up_recovers_the_pending_releases() {
    let lab = Lab::new("sigint-install");
    lab.world.set_latency("helm.upgrade_install", 5_000);
    let cancel = Cancel::new();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.cancel(Reason::Signal(Signal::Int));
    });
    let out = lab.run_with(&["up"], cancel);
    assert_eq!(out.code, 130, "{out:?}");
    let pending: Vec<String> = lab.world.state().clusters["devenv"]
        .releases
        .iter()
        .map(|r| r.status.clone())
        .collect();
    assert_eq!(
        pending,
        vec!["pending-install"; 3],
        "helm leaves interrupted installs pending"
    );
    lab.world.set_latency("helm.upgrade_install", 0);
    let plan = lab.run(&["plan"]);
    assert_eq!(plan.stdout.matches("* recover").count(), 3, "{plan:?}");
    assert_eq!(lab.run(&["up"]).code, 0);
    assert_eq!(lab.run(&["status"]).code, 0);
}

#[test]
fn sim_an_interrupt_on_an_existing_cluster_leaves_a_pending_release_that_the_next_up_recovers() {
    let lab = Lab::new("pending");
    assert_eq!(lab.run(&["up", "--skip", "redis"]).code, 0);
    lab.world.set_latency("helm.upgrade_install", 5_000);
    let cancel = Cancel::new();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.cancel(Reason::Signal(Signal::Term));
    });
    let out = lab.run_with(&["up"], cancel);
    assert_eq!(out.code, 143, "{out:?}");
    // The release this run added to an existing cluster was rolled back (uninstalled).
    assert!(
        out.stderr
            .contains("rolled back: release redis (half-installed by this run)"),
        "{out:?}"
    );
    assert!(
        lab.world.state().clusters["devenv"]
            .releases
            .iter()
            .all(|r| r.name != "redis")
    );
    lab.world.set_latency("helm.upgrade_install", 0);
    assert_eq!(lab.run(&["up"]).code, 0);
}

#[test]
fn sim_a_release_stuck_pending_is_cleared_before_installing() {
    let lab = Lab::new("stuck");
    assert_eq!(lab.run(&["up"]).code, 0);
    lab.world
        .with(|s| {
            s.clusters
                .get_mut("devenv")
                .unwrap()
                .releases
                .iter_mut()
                .find(|r| r.name == "postgresql")
                .unwrap()
                .status = "pending-upgrade".into()
        })
        .unwrap();
    let plan = lab.run(&["plan"]);
    assert!(plan.stdout.contains("* recover  postgresql"), "{plan:?}");
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    let m = lab.mutations();
    let rec = m
        .iter()
        .position(|c| c == "helm.recover postgresql")
        .expect("recovered");
    let next_helm = m[rec + 1..].iter().find(|c| c.starts_with("helm.")).unwrap();
    assert_eq!(next_helm, "helm.upgrade_install postgresql", "{m:?}");
}

#[test]
fn sim_the_lock_makes_a_second_up_wait_or_fail_with_no_wait() {
    let lab = Lab::new("lock");
    let state = devenv::state::State::new(lab.state.path(), "devenv");
    let guard = state.lock(false, &Cancel::new(), |_| {}).unwrap();
    let out = lab.run(&["up", "--no-wait"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("environment `devenv` is busy"), "{out:?}");
    assert!(lab.world.calls().is_empty(), "nothing was touched");
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(guard);
    });
    let out = lab.run(&["up", "--no-test"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("waiting for another devenv"), "{out:?}");
}

#[test]
fn sim_json_output_is_one_object_per_line_on_stdout() {
    let lab = Lab::new("json");
    let out = lab.run(&["-o", "json", "up"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let events: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    assert_eq!(events.last().unwrap()["event"], "summary");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step" && e["id"] == "postgresql" && e["status"] == "ok")
    );
    let checks: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "check")
        .map(|e| e["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks.len(), 4, "{checks:?}");
    assert!(checks.contains(&"in-cluster dns"), "{checks:?}");
    // The checks are `check` events, not also the text table's rows; the smoke namespace's
    // cleanup after a success is a `cleanup`, not a rollback.
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "info" && e["message"].as_str().unwrap_or("").contains("result  time")),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e["event"] == "rollback"), "{events:?}");
    assert!(events.iter().any(|e| e["event"] == "cleanup"), "{events:?}");
    let bad = lab.run(&["-o", "json", "up", "--only", "postgress"]);
    assert_eq!(bad.code, 2);
    let events = crate::common::events(&bad.stdout);
    let e = &events[events.len() - 2];
    assert_eq!(e["event"], "error");
    assert_eq!(e["help"], "did you mean `postgresql`?");
    let last = events.last().unwrap();
    assert_eq!(
        (&last["event"], &last["command"], &last["result"], &last["exit_code"]),
        (&"summary".into(), &"up".into(), &"failed".into(), &2.into())
    );
    // A command that acts streams events, each with its time, and ends with its summary.
    let out = lab.run(&["-o", "json", "test"]);
    let events = crate::common::events(&out.stdout);
    assert!(
        events
            .iter()
            .all(|e| e["ts"].as_str().is_some_and(|t| t.ends_with('Z'))),
        "{out:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(
        (&last["event"], &last["exit_code"]),
        (&"summary".into(), &out.code.into())
    );
    // A report is one document (kubectl's convention), with its result and exit code.
    for args in [
        &["status"][..],
        &["plan"],
        &["env"],
        &["tools", "list"],
        &["version"],
        &["doctor"],
    ] {
        let out = lab.run(&[&["-o", "json"][..], args].concat());
        let doc: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not one document ({e}): {out:?}"));
        assert_eq!(doc["exit_code"], out.code, "{args:?}: {doc}");
        assert!(doc["result"].is_string(), "{args:?}: {doc}");
        // And as YAML.
        let yaml = lab.run(&[&["-o", "yaml"][..], args].concat());
        let y: serde_json::Value =
            serde_saphyr::from_str(&yaml.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {yaml:?}"));
        assert_eq!(y["exit_code"], doc["exit_code"], "{args:?}");
    }
    let status: serde_json::Value = serde_json::from_str(&lab.run(&["-o", "json", "status"]).stdout).unwrap();
    assert_eq!(status["healthy"], true, "{status}");
    // -o yaml of what streams is refused.
    assert_eq!(lab.run(&["-o", "yaml", "up"]).code, 2);
}

#[test]
fn sim_dry_run_prints_the_plan_and_touches_nothing() {
    let lab = Lab::new("dry");
    let out = lab.run(&["up", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("+ create   cluster devenv"), "{out:?}");
    assert!(lab.mutations().is_empty());
}

#[test]
fn sim_status_reports_health_in_its_exit_code() {
    let lab = Lab::new("status");
    let out = lab.run(&["status"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("cluster:     absent"));
    assert_eq!(lab.run(&["up"]).code, 0);
    let out = lab.run(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("postgresql") && out.stdout.contains("127.0.0.1:15432"),
        "{out:?}"
    );
    lab.world
        .with(|s| s.clusters.get_mut("devenv").unwrap().nodes[0].running = false)
        .unwrap();
    let out = lab.run(&["status"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("exited") && out.stderr.contains("devenv-control-plane has exited"),
        "{out:?}"
    );
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(lab.mutations().contains(&"cluster.start devenv".to_string()));
}

#[test]
fn sim_a_failing_smoke_probe_names_the_endpoint() {
    let lab = Lab::new("smoke");
    lab.world.inject(
        "probe",
        Some("redis"),
        "redis: nothing accepts connections on 127.0.0.1:16379",
        0,
    );
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("redis 127.0.0.1:16379"), "{out:?}");
    // The components stay installed; only the smoke tests run again next time.
    lab.world.with(|s| s.faults.clear()).unwrap();
    let before = lab.mutations().len();
    assert_eq!(lab.run(&["up"]).code, 0);
    let after: Vec<_> = lab.mutations()[before..].to_vec();
    let smoke_only = |m: &String| {
        m == "kube.set_applied smoke"
            || [
                "kube.create_namespace devenv-smoke-",
                "kube.smoke_echo devenv-smoke-",
                "kube.smoke_job devenv-smoke-",
                "kube.delete_namespace devenv-smoke-",
            ]
            .iter()
            .any(|p| m.starts_with(p))
    };
    assert!(
        after.iter().all(smoke_only),
        "only the smoke tests ran again: {after:?}"
    );
    assert!(after.contains(&"kube.set_applied smoke".to_string()), "{after:?}");
}

#[test]
fn sim_init_writes_the_defaults_and_refuses_to_overwrite() {
    let lab = Lab::new("init");
    assert_eq!(lab.run(&["init"]).code, 0);
    assert!(lab.project.path().join("helm-values/postgresql.yaml").is_file());
    let out = lab.run(&["init"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--force"));
    assert_eq!(lab.run(&["init", "--force"]).code, 0);
    // The written files are the defaults, so the plan is the default plan.
    assert_eq!(lab.run(&["plan"]).code, 0);
}

#[test]
fn help_and_completions_go_to_stdout() {
    let lab = Lab::new("help");
    let out = lab.run(&["--help"]);
    assert_eq!(out.code, 0);
    for cmd in [
        "up",
        "plan",
        "down",
        "status",
        "test",
        "init",
        "completion",
        "version",
        "stop",
        "start",
    ] {
        assert!(out.stdout.contains(&format!("  {cmd} ")), "{cmd} missing from --help");
    }
    assert!(out.stdout.contains("Examples:") && out.stdout.contains("devenv run --ephemeral -- cargo test"));
    // `completion`, as kind, kubectl and helm spell it; `completions` still works.
    for spelling in ["completion", "completions"] {
        let out = lab.run(&[spelling, "bash"]);
        assert_eq!(out.code, 0, "{spelling}");
        assert!(out.stdout.contains("_devenv()"), "{spelling}");
    }
    let out = lab.run(&["up", "--bogus"]);
    assert_eq!(out.code, 2);
}

#[test]
fn sim_existing_driver_decides_by_the_server_url_before_any_connection() {
    let lab = Lab::new("remote");
    // A cluster on this machine, reached through the context `kind-devenv`.
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let existing = ["--driver", "existing", "--context", "kind-devenv"];
    // The same name, but the context now points at another host: refused, whatever the name.
    lab.world
        .with(|s| s.host.api_server = Some("https://10.1.2.3:6443".into()))
        .unwrap();
    let before = lab.world.calls().len();
    let out = lab.run(&[&["up"][..], &existing[..]].concat());
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("context `kind-devenv` does not point at a cluster on this machine")
            && out.stderr.contains("https://10.1.2.3:6443"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("help: if the cluster behind `kind-devenv` really is a development cluster you may change, add --allow-remote"),
        "{out:?}"
    );
    let after: Vec<_> = lab.world.calls()[before..].iter().map(|c| c.op.clone()).collect();
    assert!(
        after
            .iter()
            .all(|op| op == "cluster.kubeconfig" || op == "engine.addresses"),
        "only the kubeconfig was read, nothing was dialled: {after:?}"
    );
    // A container the engine runs (minikube's node on Linux) is this machine.
    lab.world
        .with(|s| s.host.container_addresses = vec!["10.1.2.3".parse().unwrap()])
        .unwrap();
    assert_eq!(lab.run(&[&["plan"][..], &existing[..]].concat()).code, 0);
    // An empty context never means "the current one"; no context is a usage error too.
    let out = lab.run(&["up", "--driver", "existing", "--context", ""]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("the kube context is empty"), "{out:?}");
    let out = lab.run(&["up", "--driver", "existing"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("needs a kube context"), "{out:?}");
}

#[test]
fn sim_existing_driver_rereads_the_context_each_command() {
    let lab = Lab::new("existing-repoint");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let existing = ["--driver", "existing", "--context", "kind-devenv"];
    lab.run(&[&["status"][..], &existing[..]].concat());
    let copy = std::fs::read_to_string(lab.state.path().join("devenv/kubeconfig")).unwrap();
    assert!(copy.contains("https://127.0.0.1:6443"), "{copy}");
    // The user repoints the context (same cluster here, a new address): the next command
    // uses the context as it is now, not devenv's copy from before.
    lab.world
        .with(|s| s.host.api_server = Some("https://127.0.0.1:40555".into()))
        .unwrap();
    lab.run(&[&["status"][..], &existing[..]].concat());
    let copy = std::fs::read_to_string(lab.state.path().join("devenv/kubeconfig")).unwrap();
    assert!(copy.contains("https://127.0.0.1:40555"), "{copy}");
}

#[test]
fn sim_an_environment_never_changes_another_environments_releases() {
    let lab = Lab::new("two-owners");
    // Environment `devenv` made the cluster and installed its releases.
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let shop = ["-n", "shop", "--driver", "existing", "--context", "kind-devenv"];
    lab.world
        .with(|s| s.host.contexts.insert("shop".into(), "devenv".into()))
        .unwrap();
    let before = lab.mutations().len();
    let out = lab.run(&[&["up"][..], &shop[..]].concat());
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("belongs to devenv environment `devenv` (its record kube-system/devenv-devenv)")
            && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("help: manage it as that environment (`devenv -n devenv up`)"),
        "{out:?}"
    );
    assert_eq!(lab.mutations().len(), before, "no helm call, no record written");
    // `down` as `shop` removes nothing of `devenv`'s.
    let out = lab.run(&[&["down"][..], &shop[..]].concat());
    assert_eq!(out.code, 0, "{out:?}");
    let state = lab.world.state();
    assert_eq!(
        state.clusters["devenv"].releases.len(),
        3,
        "ingress-nginx, postgresql, redis kept"
    );
    assert!(!state.clusters["devenv"].record("devenv").is_empty());
}

#[test]
fn sim_down_on_an_existing_cluster_removes_only_what_devenv_installed() {
    let lab = Lab::new("existing-down");
    // A cluster devenv did not create, with a release of someone else's in it.
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    lab.world
        .with(|s| {
            let c = s.clusters.get_mut("devenv").unwrap();
            c.releases.push(devenv::world::ReleaseInfo {
                name: "their-app".into(),
                namespace: "team".into(),
                status: "deployed".into(),
                chart: "app-1.0.0".into(),
            });
        })
        .unwrap();
    let out = lab.run(&["down", "--driver", "existing", "--context", "kind-devenv"]);
    assert_eq!(out.code, 0, "{out:?}");
    let state = lab.world.state();
    let cluster = &state.clusters["devenv"];
    assert_eq!(
        cluster.releases.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["their-app"]
    );
    assert!(cluster.record("devenv").is_empty());
    assert!(out.stderr.contains("left in place"), "{out:?}");
    let out = lab.run(&["up", "--recreate", "--driver", "existing", "--context", "kind-devenv"]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn sim_nodes_that_never_become_ready_fail_the_create_step_with_the_reason() {
    let lab = Lab::new("notready");
    lab.world.inject(
        "kube.wait_nodes",
        None,
        "node(s) devenv-control-plane not Ready after 300s",
        1,
    );
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not Ready"), "{out:?}");
    assert!(
        !lab.mutations().iter().any(|m| m.starts_with("helm.")),
        "nothing is installed on a cluster that is not ready"
    );
    // The cluster was created; the next run waits again and goes on.
    assert_eq!(lab.run(&["up"]).code, 0);
}

#[test]
fn sim_down_of_a_misspelt_environment_names_the_clusters_that_exist() {
    let lab = Lab::new("wrongname");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let out = lab.run(&["down", "-n", "devnev"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("environment `devnev` has no cluster: nothing to do (clusters here: devenv)"),
        "{out:?}"
    );
    assert!(lab.world.state().clusters.contains_key("devenv"));
}

#[test]
fn sim_status_shows_the_kubernetes_version() {
    let lab = Lab::new("k8sversion");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let out = lab.run(&["status"]);
    assert!(out.stdout.contains("kubernetes:  v1.36.4"), "{out:?}");
    let out = lab.run(&["-o", "json", "status"]);
    let v = crate::common::event(&out.stdout, "status");
    assert_eq!(v["kubernetes"], "v1.36.4");
    assert_eq!(v["healthy"], true);
}

#[test]
fn sim_images_are_loaded_once_then_kept_and_a_rebuilt_one_is_loaded_again() {
    let lab = Lab::new("images");
    lab.project.write("devenv.yaml", "images: [myapp:dev]\n");
    let out = lab.run(&["up", "--no-test"]);
    assert_eq!(out.code, 3, "the image is not built yet: {out:?}");
    assert!(
        out.stderr
            .contains("image `myapp:dev` (devenv.yaml images) is not on this machine"),
        "{out:?}"
    );
    assert!(lab.mutations().is_empty());
    lab.world.add_host_image("myapp:dev", 50 << 20);
    let out = lab.run(&["up", "--no-test"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("myapp:dev: loaded into devenv-control-plane"),
        "{out:?}"
    );
    let out = lab.run(&["up", "--no-test"]);
    assert!(out.stderr.contains("nothing to do"), "{out:?}");
    let plan = lab.run(&["plan", "--no-test"]);
    assert!(
        plan.stdout.contains("= keep     1 image(s)") && plan.stdout.contains("on every node, by ID"),
        "{plan:?}"
    );
    // Rebuilt: same tag, new ID.
    lab.world.add_host_image("myapp:dev", 51 << 20);
    let plan = lab.run(&["plan", "--no-test"]);
    assert!(
        plan.stdout.contains("> run      1 image(s)") && plan.stdout.contains("rebuilt since it was loaded"),
        "{plan:?}"
    );
    let before = lab.mutations().len();
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let after = lab.mutations()[before..].to_vec();
    assert_eq!(
        after,
        vec!["images.import devenv-control-plane".to_string()],
        "only the image moved"
    );
}

#[test]
fn sim_load_into_a_node_that_fails_names_the_node() {
    let lab = Lab::new("loadfail");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    lab.world.add_host_image("api:1", 1 << 20);
    lab.world.inject(
        "images.import",
        Some("devenv-control-plane"),
        "ctr: failed to ingest: no space left on device",
        0,
    );
    let out = lab.run(&["load", "api:1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("node devenv-control-plane") && out.stderr.contains("no space left on device"),
        "{out:?}"
    );
}

#[test]
fn sim_the_database_password_is_generated_once_kept_private_and_never_printed() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new("secrets");
    let first = lab.run(&["-v", "up"]);
    assert_eq!(first.code, 0, "{first:?}");
    let creds_path = lab.state.path().join("devenv/credentials.json");
    let creds: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&creds_path).unwrap()).unwrap();
    let pw = creds["postgres_password"].as_str().unwrap().to_string();
    assert_eq!(pw.len(), 36);
    let values = lab.state.path().join("devenv/values/postgresql.devenv.yaml");
    assert!(
        std::fs::read_to_string(&values).unwrap().contains(&pw),
        "the chart gets the password"
    );
    for p in [&creds_path, &values] {
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            p.display()
        );
    }
    // Stable across runs, and never in what devenv prints.
    lab.project.write(
        "helm-values/postgresql.yaml",
        "service:\n  type: NodePort\nresources: {}\n",
    );
    let again = lab.run(&["-v", "up"]);
    let json = lab.run(&["-o", "json", "status"]);
    let creds2: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&creds_path).unwrap()).unwrap();
    assert_eq!(creds2["postgres_password"], pw.as_str());
    for out in [&first, &again, &json] {
        assert!(
            !out.stdout.contains(&pw) && !out.stderr.contains(&pw),
            "the password was printed"
        );
    }
}

#[test]
fn sim_an_image_that_cannot_be_pulled_names_the_pod_the_image_and_the_reason() {
    let lab = Lab::new("pull");
    lab.world.break_pods(
        "redis",
        devenv::sim::PodProblem {
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image \"docker.io/library/redis:8.10.1\"".into(),
            image: "docker.io/library/redis:8.10.1".into(),
            log: String::new(),
        },
    );
    let out = lab.run(&["up", "--timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("redis (namespace devenv-data) is not ready after 1s"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(
            "pod redis-0 (Pending): container redis is ImagePullBackOff for image docker.io/library/redis:8.10.1"
        ),
        "{out:?}"
    );
    assert!(out.stderr.contains("help: the image cannot be pulled"), "{out:?}");
    // The others are ready and recorded; redis is not, so the next up tries it again.
    lab.world.with(|s| s.pod_problems.clear()).unwrap();
    let mutations = lab.mutations().len();
    let again = lab.run(&["up"]);
    assert_eq!(again.code, 0, "{again:?}");
    let changed = lab.mutations()[mutations..].to_vec();
    assert!(
        changed.contains(&"helm.upgrade_install redis".to_string()),
        "{changed:?}"
    );
    assert!(!changed.iter().any(|c| c.contains("postgresql")), "{changed:?}");
}

#[test]
fn sim_a_crashing_component_shows_its_last_log_lines() {
    let lab = Lab::new("crash");
    lab.world.break_pods(
        "postgresql",
        devenv::sim::PodProblem {
            reason: "CrashLoopBackOff".into(),
            message: "back-off 40s restarting failed container".into(),
            image: "docker.io/library/postgres:18.6".into(),
            log: "initdb: error: directory \"/var/lib/postgresql/data\" exists but is not empty\n".into(),
        },
    );
    let out = lab.run(&["up", "--timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("container postgresql is CrashLoopBackOff"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("| initdb: error: directory \"/var/lib/postgresql/data\" exists but is not empty"),
        "{out:?}"
    );
}

#[test]
fn sim_the_smoke_tests_run_in_a_namespace_of_their_own_that_is_gone_afterwards() {
    let lab = Lab::new("smoke-ns");
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    let calls = lab.world.calls();
    let created: Vec<_> = calls.iter().filter(|c| c.op == "kube.create_namespace").collect();
    assert_eq!(created.len(), 1, "{calls:?}");
    assert!(created[0].target.starts_with("devenv-smoke-"));
    for op in ["kube.smoke_echo", "kube.smoke_job", "kube.delete_namespace"] {
        assert!(
            calls.iter().any(|c| c.op == op && c.target == created[0].target),
            "{op} on {}",
            created[0].target
        );
    }
    assert!(out.stderr.contains("in-cluster dns"), "{out:?}");
    assert!(
        lab.world.state().clusters["devenv"].namespaces.is_empty(),
        "the run's namespace is removed"
    );
    // A second run gets a namespace of its own.
    assert_eq!(lab.run(&["test"]).code, 0);
    let names: Vec<String> = lab
        .world
        .calls()
        .into_iter()
        .filter(|c| c.op == "kube.create_namespace")
        .map(|c| c.target)
        .collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1]);
}

#[test]
fn sim_a_service_that_does_not_resolve_in_the_cluster_fails_the_in_cluster_check() {
    let lab = Lab::new("dns");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    // The redis release disappears behind devenv's back.
    lab.world
        .with(|s| {
            s.clusters
                .get_mut("devenv")
                .unwrap()
                .releases
                .retain(|r| r.name != "redis")
        })
        .unwrap();
    let out = lab.run(&["test"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("in-cluster dns") && l.contains("FAILED")),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("redis.devenv-data.svc.cluster.local:6379: bad address"),
        "{out:?}"
    );
    assert!(lab.world.state().clusters["devenv"].namespaces.is_empty());
}

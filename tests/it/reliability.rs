//! Breaking things on purpose, on the SIMULATED world (src/sim/): a fault at every external
//! step, interrupts at many points, concurrent runs, and a record from a newer devenv. Each must
//! end with a clear error and exit code, never a panic, and the next `up` must converge.

use crate::common::Lab;
use devenv::error::Signal;
use devenv::exec::{Cancel, Reason};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Releases, the keys of devenv's record, and each node's images: whether two environments are the same.
type Fingerprint = (
    BTreeSet<String>,
    BTreeSet<String>,
    BTreeMap<String, BTreeMap<String, String>>,
);

/// The parts of the world that say whether two environments are the same.
fn fingerprint(lab: &Lab) -> Fingerprint {
    let s = lab.world.state();
    let c = &s.clusters["devenv"];
    let releases = c
        .releases
        .iter()
        .map(|r| format!("{}/{} {} {}", r.namespace, r.name, r.chart, r.status))
        .collect();
    let applied = c.record("devenv").keys().cloned().collect();
    (releases, applied, c.node_images.clone())
}

fn lab_with_image(tag: &str) -> Lab {
    let lab = Lab::new(tag);
    // The image cache off: these tests time their interrupts against the steps without it (the
    // cache's own interrupts are in sim_cache.rs).
    lab.project
        .write("devenv.yaml", "images: [app:dev]\nimageCache: false\n");
    lab.world.add_host_image("app:dev", 5 << 20);
    lab
}

fn reference() -> Fingerprint {
    let lab = lab_with_image("reference");
    assert_eq!(lab.run(&["up"]).code, 0);
    let mut f = fingerprint(&lab);
    // Image IDs differ between labs (each builds its own); compare names only.
    for m in f.2.values_mut() {
        for v in m.values_mut() {
            *v = String::new();
        }
    }
    f
}

fn same_as_reference(lab: &Lab, want: &Fingerprint) {
    let mut f = fingerprint(lab);
    for m in f.2.values_mut() {
        for v in m.values_mut() {
            *v = String::new();
        }
    }
    assert_eq!(&f, want);
}

#[test]
fn sim_a_fault_at_each_external_step_fails_clearly_and_the_next_up_converges() {
    let want = reference();
    // (operation, target, message, whether the fault is met on a second run rather than the first)
    let cases: &[(&str, Option<&str>, &str, bool)] = &[
        (
            "cluster.observe",
            None,
            "`docker ps` exited with status 1: error during connect",
            false,
        ),
        (
            "cluster.create",
            None,
            "ERROR: failed to create cluster: command \"docker run\" failed: address already in use",
            false,
        ),
        (
            "kube.wait_nodes",
            None,
            "node(s) devenv-control-plane not Ready after 300s",
            false,
        ),
        (
            "cluster.kubeconfig",
            None,
            "ERROR: could not locate any control plane nodes",
            false,
        ),
        (
            "kube.set_applied",
            Some("cluster"),
            "error: the server doesn't have a resource type \"configmap\"",
            false,
        ),
        (
            "helm.upgrade_install",
            Some("postgresql"),
            "Error: INSTALLATION FAILED: context deadline exceeded",
            false,
        ),
        (
            "helm.upgrade_install",
            Some("ingress-nginx"),
            "Error: failed calling webhook \"validate.nginx.ingress.kubernetes.io\"",
            false,
        ),
        (
            "images.import",
            Some("devenv-control-plane"),
            "ctr: content digest sha256:9041570e: not found",
            false,
        ),
        (
            "probe",
            Some("postgresql"),
            "postgresql: nothing accepts connections on 127.0.0.1:15432",
            false,
        ),
        (
            "kube.get_applied",
            None,
            "Unable to connect to the server: dial tcp 127.0.0.1:6443: connect: connection refused",
            true,
        ),
        // Helm's releases are read from its storage Secrets through the API.
        (
            "kube.helm_releases",
            None,
            "secrets is forbidden: User \"dev\" cannot list resource \"secrets\" (simulated 500)",
            true,
        ),
        (
            "helm.upgrade_install",
            Some("redis"),
            "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
            true,
        ),
    ];
    for (op, target, message, second) in cases {
        let lab = lab_with_image("fault");
        if *second {
            assert_eq!(lab.run(&["up"]).code, 0);
            // Something to upgrade, so that the upgrade path is the one that fails.
            lab.project
                .write("helm-values/redis.yaml", "service:\n  type: NodePort\nresources: {}\n");
        }
        lab.world.inject(op, *target, message, 0);
        let out = lab.run(&["up"]);
        assert_eq!(out.code, 1, "{op}: {out:?}");
        let err_line = out
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{op}: no error line: {out:?}"));
        assert!(
            out.stderr.contains(message),
            "{op}: the tool's message is not shown: {out:?}"
        );
        assert!(
            out.stderr.lines().any(|l| l.starts_with("help: ")),
            "{op}: no help line: {out:?}"
        );
        assert!(!out.stderr.contains("panicked"), "{op}: {err_line}");
        lab.world.with(|s| s.faults.clear()).unwrap();
        lab.project.write(
            "helm-values/redis.yaml",
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/helm-values/redis.yaml")).unwrap(),
        );
        let out = lab.run(&["up"]);
        assert_eq!(out.code, 0, "{op}: the next up did not converge: {out:?}");
        assert_eq!(lab.run(&["status"]).code, 0, "{op}");
        same_as_reference(&lab, &want);
    }
}

#[test]
fn sim_a_state_file_that_cannot_be_written_is_an_error_not_a_panic() {
    let lab = Lab::new("statefile");
    // Where devenv keeps generated values there is a file instead of a directory.
    std::fs::create_dir_all(lab.state.path().join("devenv")).unwrap();
    std::fs::write(lab.state.path().join("devenv/values"), "not a directory").unwrap();
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot write") && out.stderr.contains("values"),
        "{out:?}"
    );
    assert!(out.stderr.contains("help:"), "{out:?}");
    std::fs::remove_file(lab.state.path().join("devenv/values")).unwrap();
    assert_eq!(lab.run(&["up"]).code, 0);
}

#[test]
fn sim_interrupts_at_24_points_exit_130_or_143_release_the_lock_and_the_next_up_converges() {
    let want = reference();
    let mut outcomes = BTreeMap::new();
    for i in 0..24u64 {
        let lab = lab_with_image("interrupt");
        for (op, ms) in [
            ("cluster.observe", 10),
            ("cluster.create", 120),
            ("kube.wait_nodes", 40),
            ("cluster.kubeconfig", 15),
            ("kube.set_applied", 8),
            ("probe", 30),
            ("images.exec", 5),
        ] {
            lab.world.set_latency(op, ms);
        }
        for (rel, ms) in [("ingress-nginx", 90), ("postgresql", 160), ("redis", 60)] {
            lab.world.set_latency(&format!("helm.upgrade_install:{rel}"), ms);
        }
        lab.world.with(|s| s.bytes_per_ms = Some(100_000)).unwrap();
        let signal = if i % 2 == 0 { Signal::Int } else { Signal::Term };
        let cancel = Cancel::new();
        let c = cancel.clone();
        let at = Duration::from_millis(5 + i * 18);
        std::thread::spawn(move || {
            std::thread::sleep(at);
            c.cancel(Reason::Signal(signal));
        });
        let started = std::time::Instant::now();
        let out = lab.run_with(&["up"], cancel);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "point {i}: took {:?}",
            started.elapsed()
        );
        assert_eq!(out.code, signal.exit_code(), "point {i} ({at:?}): {out:?}");
        assert!(!out.stderr.contains("panicked"));
        // Where it stopped, for the record in RELIABILITY.md.
        let last = out
            .stderr
            .lines()
            .rfind(|l| l.contains(" • "))
            .unwrap_or("")
            .split(" • ")
            .nth(1)
            .unwrap_or("before the first step")
            .to_string();
        *outcomes.entry(last).or_insert(0) += 1;
        lab.world.with(|s| s.latency_ms.clear()).unwrap();
        let next = lab.run(&["up", "--no-wait"]);
        assert_eq!(
            next.code, 0,
            "point {i}: the lock was kept or the next up did not converge: {next:?}"
        );
        same_as_reference(&lab, &want);
    }
    eprintln!("interrupted during: {outcomes:?}");
    for stage in ["before the first step", "create cluster devenv", "run smoke tests"] {
        assert!(
            outcomes.contains_key(stage),
            "no interrupt landed in `{stage}`: {outcomes:?}"
        );
    }
    assert!(
        outcomes
            .keys()
            .any(|k| k.starts_with("create ") && k != "create cluster devenv"),
        "none during the installs: {outcomes:?}"
    );
}

#[test]
fn sim_two_ups_of_the_same_environment_at_once_create_it_once() {
    let lab = Lab::new("twoups");
    lab.world.set_latency("cluster.create", 300);
    let outs: Vec<_> = std::thread::scope(|s| {
        let a = s.spawn(|| lab.run(&["up", "--no-test"]));
        std::thread::sleep(Duration::from_millis(50));
        let b = s.spawn(|| lab.run(&["up", "--no-test"]));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert!(outs.iter().all(|o| o.code == 0), "{outs:?}");
    assert!(outs[1].stderr.contains("waiting for another devenv"), "{:?}", outs[1]);
    assert!(
        outs[1].stderr.contains("nothing to do"),
        "the second found the work done: {:?}",
        outs[1]
    );
    assert_eq!(
        lab.mutations()
            .iter()
            .filter(|m| m.starts_with("cluster.create"))
            .count(),
        1
    );
}

#[test]
fn sim_up_and_down_at_once_are_serialized() {
    let lab = Lab::new("updown");
    lab.world.set_latency("cluster.create", 300);
    let (up, down) = std::thread::scope(|s| {
        let a = s.spawn(|| lab.run(&["up", "--no-test"]));
        std::thread::sleep(Duration::from_millis(50));
        let b = s.spawn(|| lab.run(&["down"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(up.code, 0, "{up:?}");
    assert_eq!(down.code, 0, "{down:?}");
    assert!(down.stderr.contains("waiting for another devenv"), "{down:?}");
    assert!(lab.world.state().clusters.is_empty(), "down ran after up finished");
}

#[test]
fn sim_two_environments_at_once_do_not_wait_for_each_other() {
    let lab = Lab::new("twoenvs");
    lab.world.set_latency("cluster.create", 300);
    let outs: Vec<_> = std::thread::scope(|s| {
        let a = s.spawn(|| lab.run(&["up", "--no-test", "-n", "alpha"]));
        let b = s.spawn(|| lab.run(&["up", "--no-test", "-n", "beta"]));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert!(
        outs.iter().all(|o| o.code == 0 && !o.stderr.contains("waiting")),
        "{outs:?}"
    );
    let creates: Vec<_> = lab
        .world
        .calls()
        .into_iter()
        .filter(|c| c.op == "cluster.create")
        .collect();
    assert_eq!(creates.len(), 2);
    assert!(
        creates[0].start_ms < creates[1].end_ms && creates[1].start_ms < creates[0].end_ms,
        "the creates did not overlap"
    );
}

#[test]
fn sim_a_record_written_by_a_newer_devenv_is_left_alone() {
    let lab = Lab::new("newer");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    lab.world
        .with(|s| {
            s.clusters
                .get_mut("devenv")
                .unwrap()
                .records
                .entry("devenv".into())
                .or_default()
                .insert("format".into(), "2".into())
        })
        .unwrap();
    lab.project
        .write("helm-values/redis.yaml", "service:\n  type: NodePort\nresources: {}\n");
    let before = lab.mutations().len();
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("has format 2: a newer devenv wrote it"), "{out:?}");
    assert_eq!(lab.mutations().len(), before, "something was changed");
}

/// PostgreSQL's rows in the simulated world live where a real database's would: in the data
/// directory on this machine when persistent data is on (the default), else in the cluster.
#[test]
fn sim_without_persistent_data_a_row_is_lost_only_after_devenv_said_so_and_was_confirmed() {
    let lab = Lab::new("data-lost");
    lab.project
        .write("devenv.yaml", "postgresql:\n  enabled: true\n  persistentData: false\n");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    lab.world.db_write("devenv", "row-written-before-recreate");
    let out = lab.run(&["up", "--recreate"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("--recreate deletes cluster `devenv`: PostgreSQL's data, Redis's data and everything else in the cluster is lost"),
        "{out:?}"
    );
    assert!(!lab.mutations().iter().any(|m| m.starts_with("cluster.delete")));
    assert_eq!(
        lab.world.db_rows("devenv"),
        ["row-written-before-recreate"],
        "not confirmed: kept"
    );
    assert_eq!(lab.run(&["up", "--recreate", "--yes", "--no-test"]).code, 0);
    assert!(lab.mutations().iter().any(|m| m.starts_with("cluster.delete")));
    assert!(
        lab.world.db_rows("devenv").is_empty(),
        "confirmed: gone, as devenv said"
    );
}

#[test]
fn sim_with_persistent_data_a_row_survives_recreate_and_down_up_until_purge() {
    let lab = Lab::new("data-kept");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    // Every node mounts the data directory; PostgreSQL's claim is bound to a volume inside it.
    let data = lab.state.path().join("devenv/data");
    let cluster = &lab.world.state().clusters["devenv"];
    assert_eq!(
        cluster.mounts,
        [(data.display().to_string(), "/devenv-data".to_string())]
    );
    assert_eq!(
        cluster.volumes["devenv-data/postgresql-data"],
        "/devenv-data/postgresql"
    );
    lab.world.db_write("devenv", "row-1");
    let out = lab.run(&["up", "--recreate"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "--recreate deletes cluster `devenv`: PostgreSQL's data stay in {}; Redis's data",
            data.display()
        )),
        "{out:?}"
    );
    assert_eq!(lab.run(&["up", "--recreate", "--yes", "--no-test"]).code, 0);
    assert_eq!(lab.world.db_rows("devenv"), ["row-1"], "survived --recreate");
    let down = lab.run(&["down"]);
    assert_eq!(down.code, 0, "{down:?}");
    assert!(down.stderr.contains("kept PostgreSQL's data in"), "{down:?}");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    assert_eq!(lab.world.db_rows("devenv"), ["row-1"], "survived down + up");
    let purge = lab.run(&["down", "--purge"]);
    assert!(purge.stderr.contains("with the persistent data in it"), "{purge:?}");
    assert!(!data.exists());
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    assert!(lab.world.db_rows("devenv").is_empty(), "--purge deleted it");
}

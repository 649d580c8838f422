//! Real signals to the real `devenv` binary. The cluster, helm and the rest are the SIMULATED world,
//! kept in a JSON file (`DEVENV_SIMULATE`) so that it outlives the process, as a Docker engine would.

use crate::common::TempDir;
use devenv::sim::SimWorld;
use std::process::Child;
use std::time::{Duration, Instant};

struct Proc {
    project: TempDir,
    state: TempDir,
    world_file: std::path::PathBuf,
}

impl Proc {
    fn new(tag: &str) -> Self {
        let project = TempDir::new(&format!("{tag}-proj"));
        let state = TempDir::new(&format!("{tag}-state"));
        let world_file = state.path().join("world.json");
        SimWorld::open(&world_file).unwrap();
        Proc {
            project,
            state,
            world_file,
        }
    }
    fn world(&self) -> SimWorld {
        SimWorld::open(&self.world_file).unwrap()
    }
    fn spawn(&self, args: &[&str]) -> Child {
        crate::common::devenv(self.project.path(), self.state.path())
            .simulate(&self.world_file)
            .args(args)
            .spawn()
    }
    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = self.spawn(args).wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Waits for the simulated world to show that `op` has started, so the signal lands mid-step.
fn wait_for_call(p: &Proc, op: &str) {
    let t = Instant::now();
    while !std::fs::read_to_string(&p.world_file)
        .unwrap_or_default()
        .contains(&format!("\"{op}\""))
    {
        assert!(t.elapsed() < Duration::from_secs(20), "{op} never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish(child: Child, within: Duration) -> (i32, String) {
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < within, "took {:?}", t.elapsed());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sim_sigint_during_cluster_create_exits_130_removes_the_half_cluster_and_releases_the_lock() {
    let p = Proc::new("sig-int");
    p.world().set_latency("cluster.create", 10_000);
    let child = p.spawn(&["up"]);
    // The observation is logged when it ends; the create starts right after it.
    wait_for_call(&p, "cluster.observe");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    let (code, err) = finish(child, Duration::from_secs(5));
    assert_eq!(code, 130, "{err}");
    assert!(
        err.contains("rolled back: cluster devenv (half-created by this run)"),
        "{err}"
    );
    assert!(p.world().state().clusters.is_empty());
    p.world().set_latency("cluster.create", 0);
    let (code, err) = p.run(&["up", "--no-wait"]);
    assert_eq!(code, 0, "the lock was released and the next up converges: {err}");
}

#[test]
fn sim_sigterm_during_installs_exits_143_and_the_next_up_recovers() {
    let p = Proc::new("sig-term");
    p.world().set_latency("helm.upgrade_install", 10_000);
    let child = p.spawn(&["up"]);
    wait_for_call(&p, "kube.set_applied");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    let (code, err) = finish(child, Duration::from_secs(5));
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    p.world().set_latency("helm.upgrade_install", 0);
    let (code, err) = p.run(&["up"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("recover"), "the pending releases were recovered: {err}");
    assert_eq!(p.run(&["status"]).0, 0);
}

#[test]
fn sim_a_second_sigint_exits_at_once_and_says_what_was_left() {
    let p = Proc::new("sig-twice");
    p.world().set_latency("cluster.create", 10_000);
    p.world().set_latency("cluster.delete", 10_000);
    let child = p.spawn(&["up"]);
    wait_for_call(&p, "cluster.observe");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(700));
    signal(&child, libc::SIGINT);
    let (code, err) = finish(child, Duration::from_secs(3));
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("interrupted twice"), "{err}");
    assert!(
        err.contains("left behind:\n  - cluster devenv (half-created by this run)"),
        "{err}"
    );
}

#[test]
fn sim_after_a_sigkill_the_next_up_takes_the_lock_and_converges() {
    let p = Proc::new("sig-kill");
    p.world().set_latency("helm.upgrade_install", 10_000);
    let mut child = p.spawn(&["up"]);
    wait_for_call(&p, "kube.set_applied");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    p.world().set_latency("helm.upgrade_install", 0);
    let (code, err) = p.run(&["up", "--no-wait"]);
    assert_eq!(code, 0, "{err}");
    // A simulated run says so (and only a test build can make one).
    assert!(err.contains("warning: this run uses the SIMULATED world"), "{err}");
    assert_eq!(p.run(&["status"]).0, 0);
}

fn smoke_namespaces(p: &Proc) -> Vec<String> {
    p.world()
        .state()
        .clusters
        .get("devenv")
        .map(|c| c.namespaces.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn sim_sigint_and_sigterm_during_devenv_test_and_run_leave_no_smoke_namespace() {
    let p = Proc::new("sig-smoke");
    assert_eq!(p.run(&["up", "--no-test"]).0, 0);
    // (command, the step to slow down, a call that has ended before it, signal, exit code)
    let cases: [(&[&str], &str, &str, i32, i32); 6] = [
        (
            &["test"],
            "kube.create_namespace",
            "kube.list_namespaces",
            libc::SIGINT,
            130,
        ),
        (
            &["test"],
            "kube.smoke_echo",
            "kube.create_namespace",
            libc::SIGTERM,
            143,
        ),
        (&["test"], "kube.smoke_job", "kube.create_namespace", libc::SIGINT, 130),
        (&["test"], "probe", "kube.create_namespace", libc::SIGTERM, 143),
        (&["test"], "kube.wait_echo", "kube.smoke_echo", libc::SIGINT, 130),
        (
            &["run", "--", "true"],
            "kube.smoke_echo",
            "kube.create_namespace",
            libc::SIGTERM,
            143,
        ),
    ];
    for (args, slow, after, sig, want) in cases {
        let w = p.world();
        w.with(|s| s.calls.clear()).unwrap();
        w.set_latency(slow, 10_000);
        // `run` brings the environment up first: its smoke step is the one interrupted.
        if args[0] == "run" {
            w.with(|s| {
                s.clusters
                    .get_mut("devenv")
                    .unwrap()
                    .records
                    .get_mut("devenv")
                    .unwrap()
                    .remove("smoke")
            })
            .unwrap();
        }
        let child = p.spawn(args);
        wait_for_call(&p, after);
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, sig);
        let (code, err) = finish(child, Duration::from_secs(5));
        assert_eq!(code, want, "{args:?} with {slow} slowed: {err}");
        assert!(
            err.contains("rolled back: smoke namespace devenv-smoke-"),
            "{slow}: {err}"
        );
        assert_eq!(
            smoke_namespaces(&p),
            Vec::<String>::new(),
            "{args:?} with {slow} slowed"
        );
        w.set_latency(slow, 0);
    }
    let (code, err) = p.run(&["test"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn sim_a_run_after_a_sigkill_sweeps_the_namespace_it_left() {
    let p = Proc::new("sig-sweep");
    assert_eq!(p.run(&["up", "--no-test"]).0, 0);
    p.world().set_latency("kube.smoke_echo", 10_000);
    let mut child = p.spawn(&["test"]);
    wait_for_call(&p, "kube.create_namespace");
    child.kill().unwrap();
    child.wait().unwrap();
    let left = smoke_namespaces(&p);
    assert_eq!(left.len(), 1, "a SIGKILL leaves the namespace: {left:?}");
    p.world().set_latency("kube.smoke_echo", 0);
    let (code, err) = p.run(&["test"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "removed smoke namespace {} left by an earlier run (its devenv process",
            left[0]
        )),
        "{err}"
    );
    assert_eq!(smoke_namespaces(&p), Vec::<String>::new());
}

#[test]
fn sim_two_test_runs_at_once_never_touch_each_others_namespace() {
    let p = Proc::new("sig-two");
    assert_eq!(p.run(&["up", "--no-test"]).0, 0);
    p.world().set_latency("kube.smoke_echo", 1500);
    let a = p.spawn(&["test"]);
    wait_for_call(&p, "kube.create_namespace");
    let b = p.spawn(&["test"]);
    let (ca, ea) = finish(a, Duration::from_secs(20));
    let (cb, eb) = finish(b, Duration::from_secs(20));
    assert_eq!((ca, cb), (0, 0), "{ea}\n{eb}");
    assert!(
        !eb.contains("removed smoke namespace"),
        "b swept a's live namespace: {eb}"
    );
    let created = p
        .world()
        .calls()
        .into_iter()
        .filter(|c| c.op == "kube.create_namespace")
        .count();
    assert_eq!(created, 2);
    assert_eq!(smoke_namespaces(&p), Vec::<String>::new());
}

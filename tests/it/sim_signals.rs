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
            err.contains("cleaned up: smoke namespace devenv-smoke-"),
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

/// The screen a terminal shows after `bytes`: enough of a VT100 for what indicatif draws (text,
/// CR/LF, cursor up/down/column, erase line and erase below).
const WIDTH: usize = 160;

fn screen(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<Vec<char>> = vec![vec![]];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
                if lines.len() <= row {
                    lines.push(vec![]);
                }
            }
            '\x1b' => {
                if chars.peek() != Some(&'[') {
                    chars.next();
                    continue;
                }
                chars.next();
                let mut param = String::new();
                let mut fin = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_digit() || c == ';' || c == '?' {
                        param.push(c);
                    } else {
                        fin = c;
                        break;
                    }
                }
                let n: usize = param.trim_start_matches('?').parse().unwrap_or(1).max(1);
                match fin {
                    'A' => row = row.saturating_sub(n),
                    'B' => {
                        row += n;
                        while lines.len() <= row {
                            lines.push(vec![]);
                        }
                    }
                    'G' => col = n - 1,
                    'K' if param.is_empty() || param == "0" => lines[row].truncate(col),
                    'K' => lines[row].clear(),
                    'J' => {
                        lines[row].truncate(col);
                        lines.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                // Autowrap at the terminal's width.
                if col >= WIDTH {
                    row += 1;
                    col = 0;
                    if lines.len() <= row {
                        lines.push(vec![]);
                    }
                }
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    lines.into_iter().map(|l| l.into_iter().collect()).collect()
}

#[test]
fn sim_on_a_terminal_the_interrupt_notice_stays_on_screen_while_steps_redraw() {
    let p = Proc::new("sig-tty");
    // Three installs at once, each long enough for several redraws after the signal.
    p.world().set_latency("helm.upgrade_install", 1_500);
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: WIDTH as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills in two descriptors we own from here on.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(rc, 0, "openpty");
    use std::os::fd::FromRawFd;
    // SAFETY: each descriptor is handed to exactly one owner.
    let tty = unsafe { std::fs::File::from_raw_fd(slave) };
    let mut spawn = crate::common::devenv(p.project.path(), p.state.path())
        .simulate(&p.world_file)
        .env_remove("CI")
        .env("TERM", "xterm-256color")
        .args(["up", "--no-test"]);
    spawn
        .command()
        .stderr(tty.try_clone().unwrap())
        .stdout(tty.try_clone().unwrap());
    let child = spawn.command().spawn().unwrap();
    // The command keeps its copies of the terminal until it is dropped: the reader below sees
    // the end only once every writer is gone.
    drop(spawn);
    drop(tty);
    // SAFETY: the master side is ours alone.
    let mut reader = unsafe { std::fs::File::from_raw_fd(master) };
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = out.clone();
    let pump = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        // EIO once the last writer is gone.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    wait_for_call(&p, "kube.set_applied");
    let t = Instant::now();
    while !p.world().state().clusters.values().any(|c| c.releases.len() >= 2) {
        assert!(t.elapsed() < Duration::from_secs(20), "the installs never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    let mut child = child;
    let status = child.wait().unwrap();
    pump.join().unwrap();
    assert_eq!(status.code(), Some(130));
    let bytes = out.lock().unwrap().clone();
    let shown = screen(&bytes);
    assert!(
        shown
            .iter()
            .any(|l| l.contains("SIGINT received: stopping and cleaning up")),
        "the notice was drawn over; the screen is:\n{}\n(bytes: {:?})",
        shown.join("\n"),
        String::from_utf8_lossy(&bytes)
    );
}

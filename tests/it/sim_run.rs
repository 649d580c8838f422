//! `devenv run` and `devenv env` through the real binary, on the SIMULATED world (a JSON file via
//! DEVENV_SIMULATE); the command devenv runs is a real process.

use crate::common::{Lab, TempDir};
use devenv::sim::SimWorld;
use std::time::{Duration, Instant};

struct Bin {
    project: TempDir,
    state: TempDir,
    world_file: std::path::PathBuf,
}

impl Bin {
    fn new(tag: &str) -> Bin {
        let project = TempDir::new(&format!("{tag}-proj"));
        let state = TempDir::new(&format!("{tag}-state"));
        let world_file = state.path().join("world.json");
        SimWorld::open(&world_file).unwrap();
        Bin {
            project,
            state,
            world_file,
        }
    }
    fn world(&self) -> SimWorld {
        SimWorld::open(&self.world_file).unwrap()
    }
    fn cmd(&self, args: &[&str]) -> crate::common::Spawn {
        crate::common::devenv(self.project.path(), self.state.path())
            .simulate(&self.world_file)
            .args(args)
    }
}

#[test]
fn sim_run_ephemeral_exits_with_the_commands_status_and_leaves_no_cluster() {
    let b = Bin::new("run7");
    let out = b.cmd(&["run", "--ephemeral", "--", "sh", "-c", "exit 7"]).output();
    let err = &out.stderr;
    assert_eq!(out.code, 7, "{err}");
    assert!(err.contains("running sh -c 'exit 7'"), "{err}");
    assert!(
        !err.contains("error:"),
        "the command's status is passed through without a message: {err}"
    );
    assert!(b.world().state().clusters.is_empty(), "the ephemeral cluster is gone");
    let created: Vec<String> = b
        .world()
        .calls()
        .into_iter()
        .filter(|c| c.op == "cluster.create")
        .map(|c| c.target)
        .collect();
    assert_eq!(created.len(), 1);
    assert!(
        created[0].starts_with("devenv-") && created[0].len() == "devenv-".len() + 6,
        "a unique name: {created:?}"
    );
}

#[test]
fn sim_run_gives_the_command_the_environments_variables_and_keeps_a_named_environment() {
    let b = Bin::new("runenv");
    let out = b
        .cmd(&[
            "run",
            "--",
            "sh",
            "-c",
            "echo \"$DATABASE_URL|$REDIS_URL|$INGRESS_URL|$KUBECONFIG\"",
        ])
        .output();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stdout.trim().to_string();
    let f: Vec<&str> = line.split('|').collect();
    assert!(
        f[0].starts_with("postgres://postgres:") && f[0].ends_with("@127.0.0.1:15432/postgres"),
        "{line}"
    );
    assert_eq!(f[1], "redis://127.0.0.1:16379/0");
    assert_eq!(f[2], "http://127.0.0.1");
    assert!(
        f[3].ends_with("/devenv/kubeconfig") && std::path::Path::new(f[3]).is_file(),
        "{line}"
    );
    assert!(b.world().state().clusters.contains_key("devenv"), "not ephemeral: kept");
}

#[test]
fn sim_run_forwards_sigterm_to_the_command_and_tears_the_ephemeral_environment_down() {
    let b = Bin::new("runterm");
    let marker = b.state.path().join("got-term");
    let script = format!("trap 'touch {}; exit 0' TERM; sleep 30 & wait", marker.display());
    let mut child = b.cmd(&["run", "--ephemeral", "--", "sh", "-c", &script]).spawn();
    // Wait until the command runs (the environment is up), then stop devenv.
    let t = Instant::now();
    while !b.world().calls().iter().any(|c| c.op == "probe") {
        assert!(t.elapsed() < Duration::from_secs(20), "never got up");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(marker.exists(), "the command got SIGTERM");
    assert!(b.world().state().clusters.is_empty(), "torn down after the signal");
}

#[test]
fn sim_run_ephemeral_tears_down_when_up_fails() {
    let b = Bin::new("runfail");
    b.world()
        .inject("helm.upgrade_install", Some("redis"), "Error: INSTALLATION FAILED", 0);
    let out = b.cmd(&["run", "--ephemeral", "--", "true"]).output();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(b.world().state().clusters.is_empty());
}

#[test]
fn sim_env_prints_the_variables_in_each_format() {
    let lab = Lab::new("env");
    let out = lab.run(&["env"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is not up"), "{out:?}");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let sh = lab.run(&["env"]).stdout;
    assert!(
        sh.contains("export DATABASE_URL='postgres://postgres:")
            && sh.contains("export REDIS_URL='redis://127.0.0.1:16379/0'"),
        "{sh}"
    );
    let fish = lab.run(&["env", "--format", "fish"]).stdout;
    assert!(fish.contains("set -gx KUBECONFIG '"), "{fish}");
    let dotenv = lab.run(&["env", "--format", "dotenv"]).stdout;
    // Quoted as sh quotes: sourcing the file runs nothing that is in a value.
    assert!(dotenv.contains("INGRESS_URL='http://127.0.0.1'"), "{dotenv}");
    let json: serde_json::Value = serde_json::from_str(&lab.run(&["env", "--format", "json"]).stdout).unwrap();
    assert!(json["DATABASE_URL"].as_str().unwrap().starts_with("postgres://"));
}

#[test]
fn sim_test_prints_a_table_and_writes_a_junit_report() {
    let lab = Lab::new("junit");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    lab.world.inject(
        "probe",
        Some("redis"),
        "redis at 127.0.0.1:16379: authentication failed: WRONGPASS",
        0,
    );
    let report = lab.state.path().join("smoke.xml");
    let out = lab.run(&["test", "--junit", &report.display().to_string()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("check") && out.stderr.contains("result") && out.stderr.contains("reason"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("postgresql 127.0.0.1:15432") && l.contains(" ok ")),
        "{out:?}"
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("redis 127.0.0.1:16379") && l.contains("FAILED") && l.contains("WRONGPASS")),
        "{out:?}"
    );
    let xml = std::fs::read_to_string(&report).unwrap();
    assert!(
        xml.contains("<testsuite name=\"devenv smoke\" tests=\"4\" failures=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"redis at 127.0.0.1:16379: authentication failed: WRONGPASS\">"),
        "{xml}"
    );
}

#[test]
fn sim_the_junit_report_parses_as_xml_whatever_a_failing_check_printed() {
    let lab = Lab::new("junitxml");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    // What a container log carries: colour codes, a bell, NUL, a form feed, and XML's specials.
    lab.world.inject(
        "probe",
        Some("redis"),
        "redis: \u{1b}[31mWRONGPASS\u{1b}[0m \u{7}\u{0}\u{c} <bad> & \"quoted\" \u{1b}]0;title\u{7}",
        0,
    );
    let report = lab.state.path().join("smoke.xml");
    let out = lab.run(&["test", "--junit", &report.display().to_string()]);
    assert_eq!(out.code, 1, "{out:?}");
    let xml = std::fs::read_to_string(&report).unwrap();
    // A real XML parser reads it.
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("not XML ({e}): {xml:?}"));
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("a failure element");
    let message = failure.attribute("message").unwrap();
    assert!(
        message.contains("WRONGPASS") && message.contains("<bad> & \"quoted\""),
        "{message:?}"
    );
    assert!(!message.contains('\u{1b}') && !message.contains("title"), "{message:?}");
}

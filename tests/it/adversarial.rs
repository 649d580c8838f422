//! What an adversarial review of devenv found (secrets, the state directory, injection into tool
//! command lines, hangs, silent fallbacks), one test per finding, each failing on the devenv
//! before the fix. In-process on the SIMULATED world (no cluster is involved), except where a
//! test says it runs the real binary.

use crate::common::{Lab, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn creds(lab: &Lab) -> std::path::PathBuf {
    lab.state.path().join("devenv/credentials.json")
}

#[test]
fn sim_credentials_that_cannot_be_read_stop_up_and_are_never_replaced() {
    let lab = Lab::new("adv-creds");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let good = std::fs::read(creds(&lab)).unwrap();
    // One invalid byte: devenv once replaced the file with new passwords, which the kept
    // database then refused.
    let mut bad = good.clone();
    bad[3] = 0xff;
    std::fs::write(creds(&lab), &bad).unwrap();
    lab.project.write("helm-values/postgresql.yaml", "resources: {}\n");
    let out = lab.run(&["up", "--no-test"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("credentials.json is not UTF-8 text"), "{out:?}");
    assert!(
        out.stderr.contains("help: restore it") && out.stderr.contains("never replaces it"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(creds(&lab)).unwrap(), bad, "the file was left as it is");
    // A link (devenv does not follow links in its state directory).
    std::fs::remove_file(creds(&lab)).unwrap();
    let elsewhere = lab.state.path().join("elsewhere.json");
    std::fs::write(&elsewhere, &good).unwrap();
    std::os::unix::fs::symlink(&elsewhere, creds(&lab)).unwrap();
    let out = lab.run(&["up", "--no-test"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is a symbolic link"), "{out:?}");
    // Gone, while PostgreSQL's data is kept: no new password either.
    std::fs::remove_file(creds(&lab)).unwrap();
    lab.world.db_write("devenv", "kept");
    let out = lab.run(&["up", "--no-test"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is gone, but PostgreSQL's data"), "{out:?}");
    assert!(!creds(&lab).exists());
}

#[test]
fn sim_a_fifo_as_credentials_json_fails_at_once() {
    let lab = Lab::new("adv-fifo-creds");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    std::fs::remove_file(creds(&lab)).unwrap();
    mkfifo(&creds(&lab));
    let t = Instant::now();
    let out = lab.run(&["test"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is a FIFO, not a file"), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn sim_a_lock_that_is_a_link_is_refused_and_its_target_untouched() {
    let lab = Lab::new("adv-lock");
    let target = lab.state.path().join("precious");
    std::fs::write(&target, "keep me").unwrap();
    std::fs::create_dir_all(lab.state.path().join("devenv")).unwrap();
    std::os::unix::fs::symlink(&target, lab.state.path().join("devenv/lock")).unwrap();
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("lock is a symbolic link"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}

#[test]
fn sim_config_files_that_are_not_regular_files_are_errors_not_hangs_or_defaults() {
    let lab = Lab::new("adv-fifo-config");
    mkfifo(&lab.project.path().join("devenv.yaml"));
    let t = Instant::now();
    let out = lab.run(&["plan"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("devenv.yaml") && out.stderr.contains("is a FIFO, not a file"),
        "{out:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    std::fs::remove_file(lab.project.path().join("devenv.yaml")).unwrap();
    // An endless file: refused by type, not read for ever.
    std::os::unix::fs::symlink("/dev/zero", lab.project.path().join("devenv.yaml")).unwrap();
    let out = lab.run(&["plan"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is a device, not a file"), "{out:?}");
    // A link that leads nowhere once meant "use the defaults" with exit 0.
    std::fs::remove_file(lab.project.path().join("devenv.yaml")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/devenv.yaml", lab.project.path().join("devenv.yaml")).unwrap();
    let out = lab.run(&["plan"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("which does not exist"), "{out:?}");
}

#[test]
fn sim_a_huge_timeout_is_a_usage_error_not_a_panic() {
    let lab = Lab::new("adv-timeout");
    let out = lab.run(&["up", "--timeout", "18446744073709551615s"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("longer than 24h"), "{out:?}");
    lab.project
        .write("devenv.yaml", "timeouts:\n  component: 9999999999h\n");
    let out = lab.run(&["plan"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("devenv.yaml:2:14"), "{out:?}");
}

#[test]
fn sim_dotenv_values_are_quoted_so_that_sourcing_runs_nothing() {
    let lab = Lab::new("adv-dotenv");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let dotenv = lab.run(&["env", "--format", "dotenv"]).stdout;
    let file = TempDir::new("adv-dotenv-src");
    // A value with `$(…)` and backticks, as a state path could have.
    let tricky = "/tmp/x$(touch PWNED)`touch PWNED2`";
    let vars = std::collections::BTreeMap::from([("KUBECONFIG".to_string(), tricky.to_string())]);
    let text = format!(
        "{dotenv}{}",
        devenv::commands::env::render(&vars, devenv::commands::env::Format::Dotenv)
    );
    file.write(".env", &text);
    let out = std::process::Command::new("sh")
        .args(["-c", ". ./.env && printf %s \"$KUBECONFIG\""])
        .current_dir(file.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), tricky);
    assert!(!file.path().join("PWNED").exists() && !file.path().join("PWNED2").exists());
}

#[test]
fn sim_an_endpoint_on_every_interface_is_warned_about_in_plan_and_doctor() {
    let lab = Lab::new("adv-exposed");
    let kind = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/kind-config.yaml")).unwrap();
    // PostgreSQL's mapping on 0.0.0.0, Redis's with no listenAddress (kind takes 0.0.0.0).
    let kind = kind.replacen(
        "hostPort: 15432\n        listenAddress: 127.0.0.1",
        "hostPort: 15432\n        listenAddress: 0.0.0.0",
        1,
    );
    let kind = kind.replacen(
        "hostPort: 16379\n        listenAddress: 127.0.0.1\n",
        "hostPort: 16379\n",
        1,
    );
    lab.project.write("kind-config.yaml", &kind);
    let out = lab.run(&["plan"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("maps the postgresql port 15432 on every network interface (listenAddress 0.0.0.0)")
            && out
                .stdout
                .contains("maps the redis port 16379 on every network interface")
            && out.stdout.contains("Redis, which has no password"),
        "{out:?}"
    );
    let out = lab.run(&["doctor"]);
    assert!(
        out.stderr.contains("! port 15432") || out.stdout.contains("! port 15432"),
        "{out:?}"
    );
}

#[test]
fn sim_a_shared_directory_devenv_makes_is_not_open_to_everyone() {
    let lab = Lab::new("adv-shared-mode");
    lab.project
        .write("devenv.yaml", "sharedData:\n  enabled: true\n  path: ./shared\n");
    let out = lab.run(&["up", "--no-test"]);
    assert_eq!(out.code, 0, "{out:?}");
    let mode = std::fs::metadata(lab.project.path().join("shared"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o755, "made as mkdir -p would, never world-writable");
}

#[test]
fn sim_nothing_from_the_config_reaches_a_tool_as_a_flag() {
    let lab = Lab::new("adv-flags");
    for chart in ["--kube-context=prod", "--post-renderer=/tmp/x", "--", "-x", "a chart"] {
        lab.project.write(
            "devenv.yaml",
            &format!("releases:\n  - name: web\n    chart: \"{chart}\"\n    repository: https://charts.example.com\n    version: 1.0.0\n"),
        );
        let out = lab.run(&["plan"]);
        assert_eq!(out.code, 2, "{chart}: {out:?}");
        assert!(out.stderr.contains("is not a chart name"), "{chart}: {out:?}");
    }
    for image in ["--output=x:1", "my app:1", "App:1"] {
        lab.project.write("devenv.yaml", &format!("images:\n  - \"{image}\"\n"));
        let out = lab.run(&["plan"]);
        assert_eq!(out.code, 2, "{image}: {out:?}");
        assert!(out.stderr.contains("is not an image reference"), "{image}: {out:?}");
    }
    // A repository that is not a URL.
    lab.project.write(
        "devenv.yaml",
        "releases:\n  - name: web\n    chart: web\n    repository: \"https://\"\n    version: 1.0.0\n",
    );
    assert_eq!(lab.run(&["plan"]).code, 2);
}

#[test]
fn sim_silent_fallbacks_are_errors_that_say_what_happened() {
    let lab = Lab::new("adv-fallbacks");
    // A values file devenv would never read.
    lab.project.write("helm-values/postgresql.yml", "resources: {}\n");
    let out = lab.run(&["plan"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("helm-values/postgresql.yml")
            && out.stderr.contains("rename it to helm-values/postgresql.yaml"),
        "{out:?}"
    );
    std::fs::remove_file(lab.project.path().join("helm-values/postgresql.yml")).unwrap();
    let kind = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/kind-config.yaml")).unwrap();
    // A mount of the user's where devenv mounts its data directory.
    lab.project.write(
        "kind-config.yaml",
        &kind.replace(
            "  - role: control-plane\n",
            "  - role: control-plane\n    extraMounts:\n      - hostPath: /srv\n        containerPath: /devenv-data\n",
        ),
    );
    let out = lab.run(&["plan"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("/devenv-data is where devenv mounts its own data directory"),
        "{out:?}"
    );
    // hostPort 0: Docker would pick a port devenv cannot know (DATABASE_URL …:0).
    lab.project
        .write("kind-config.yaml", &kind.replace("hostPort: 15432", "hostPort: 0"));
    let out = lab.run(&["plan"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("hostPort 0 lets Docker pick a port"), "{out:?}");
}

#[test]
fn sim_a_component_that_never_got_ready_is_still_uninstalled_when_switched_off() {
    // Into a new cluster (on an existing one, a failed first install is undone at once).
    let lab = Lab::new("adv-never-ready");
    lab.world.break_pods(
        "metrics-server",
        devenv::sim::PodProblem {
            reason: "CrashLoopBackOff".into(),
            message: "back-off".into(),
            image: "registry.k8s.io/metrics-server/metrics-server:v0.8.0".into(),
            log: String::new(),
        },
    );
    let out = lab.run(&["up", "--no-test", "--with", "metrics-server", "--timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        lab.world.state().clusters["devenv"]
            .releases
            .iter()
            .any(|r| r.name == "metrics-server")
    );
    let out = lab.run(&["plan", "--without", "metrics-server"]);
    assert!(
        out.stdout.contains("- delete") && out.stdout.contains("release metrics-server"),
        "{out:?}"
    );
    let out = lab.run(&["up", "--no-test", "--without", "metrics-server"]);
    assert_eq!(out.code, 0, "{out:?}");
    let state = lab.world.state();
    assert!(
        !state.clusters["devenv"]
            .releases
            .iter()
            .any(|r| r.name == "metrics-server")
    );
}

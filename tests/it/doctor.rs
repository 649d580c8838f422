//! devenv doctor and devenv tools: version parsing on real output of every tool, findings on the
//! simulated machine, and — on the real machine — an empty PATH and a port really held.

use crate::common::{Lab, TempDir};
use devenv::tools::version::{Version, find};

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

#[test]
fn every_tools_version_output_is_read() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/samples/versions");
    let expected: &[(&str, &str)] = &[
        ("kind--version-q-v0.6.0-alpha.txt", "0.6.0"),
        ("kind--version-v0.6.0-alpha-linux-amd64.txt", "0.6.0"),
        ("kind--version-v0.7.0-windows-amd64.txt", "0.7.0"),
        ("kind--version-v0.11.1-linux-amd64-minikube-bench.txt", "0.11.1"),
        ("kind--version-v0.20.0-linux-amd64.txt", "0.20.0"),
        ("kind--version-v0.31.0-darwin-arm64.txt", "0.31.0"),
        ("kind--version-v0.33.0-linux-amd64.txt", "0.33.0"),
        ("kind--version-v0.33.0-linux-amd64-goexperiment.txt", "0.33.0"),
        ("helm--golden-helm3-version.txt", "3.21.0"),
        ("helm--golden-helm3-version-short.txt", "3.21.0"),
        ("helm--golden-helm3-version-template.txt", "3.21.0"),
        ("helm--golden-helm4-version.txt", "4.2.0"),
        ("helm--golden-helm4-version-short.txt", "4.2.0"),
        ("kubectl--version-client-json-v1.32.4.txt", "1.32.4"),
        ("kubectl--version-client-yaml-v1.32.4.txt", "1.32.4"),
        ("kubectl--version-client-v1.32.4.txt", "1.32.4"),
        ("kubectl--version-client-server-v1.34.3.txt", "1.34.3"),
        (
            "kubectl--version-old-format-client-v1.22.4-server-v1.21.7.txt",
            "1.22.4",
        ),
        ("minikube--version-v1.9.2-dev.txt", "1.9.2"),
        ("minikube--version-v1.38.1.txt", "1.38.1"),
        ("minikube--version-json-v1.36.0.txt", "1.36.0"),
        ("docker--version-29.6.1.txt", "29.6.1"),
        ("docker--version-client-only-28.2.2.txt", "28.2.2"),
        ("docker--version-client20.10.24-server20.10.24.txt", "20.10.24"),
        ("podman--version-flag-5.0.1.txt", "5.0.1"),
        ("podman--version-linux-5.7.1-fedora.txt", "5.7.1"),
        ("podman--version-client-server-mismatch-5.6.0-5.4.1.txt", "5.6.0"),
        ("podman--docker-shim-version-5.4.2.txt", "5.4.2"),
    ];
    for (file, want) in expected {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        assert_eq!(find(&text), Some(v(want)), "{file}");
    }
    assert_eq!(find("command not found"), None);
}

#[test]
fn a_tool_on_path_that_is_too_old_gives_way_to_the_managed_copy() {
    use devenv::tools::{Found, choose};
    let path = Found {
        path: "/usr/bin/helm".into(),
        version: Some(v("3.8.0")),
        problem: None,
        managed: false,
    };
    let managed = Found {
        path: "/data/bin/helm".into(),
        version: Some(v("4.3.0")),
        problem: None,
        managed: true,
    };
    assert_eq!(
        choose(&[path.clone(), managed.clone()], Some(v("3.14.0")))
            .unwrap()
            .path,
        managed.path
    );
    let fresh = Found {
        version: Some(v("3.15.0")),
        ..path.clone()
    };
    assert_eq!(
        choose(&[fresh.clone(), managed], Some(v("3.14.0"))).unwrap().path,
        fresh.path
    );
    // Only an old one: it is what there is (doctor reports it as blocking).
    assert_eq!(
        choose(std::slice::from_ref(&path), Some(v("3.14.0"))).unwrap().path,
        path.path
    );
}

#[test]
fn sim_doctor_reports_each_problem_with_a_fix_and_exits_3_when_one_blocks() {
    let lab = Lab::new("doctor");
    let out = lab.run(&["doctor"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("✓ engine: Docker 20.10.24"), "{out:?}");
    lab.world
        .with(|s| {
            s.host.missing_tools.insert("kind".into());
            s.host.tool_versions.insert("helm".into(), "v3.8.0".into());
            s.host.busy_ports.insert(15432, "postgres (pid 4242)".into());
            s.host
                .files
                .insert("/proc/sys/fs/inotify/max_user_watches".into(), "8192".into());
            s.host
                .files
                .insert("/proc/sys/fs/inotify/max_user_instances".into(), "128".into());
            s.host.files.insert(
                "/proc/version".into(),
                "Linux version 5.15.153.1-microsoft-standard-WSL2".into(),
            );
            s.host.free_bytes = Some(3 << 30);
        })
        .unwrap();
    let out = lab.run(&["doctor"]);
    assert_eq!(out.code, 3, "{out:?}");
    for needle in [
        "✗ tool kind: kind is not installed",
        "help: `devenv tools install kind`",
        "✗ tool helm: helm 3.8.0 at /sim/bin/helm is older than the minimum 3.14.0",
        "✗ port 15432: host port 15432 (127.0.0.1:15432, kind-config.yaml line 21) is taken by postgres (pid 4242)",
        "! inotify:",
        "sudo sysctl fs.inotify.max_user_watches=524288",
        "! wsl2:",
        "✗ disk: only 3.0 GiB free",
    ] {
        assert!(out.stdout.contains(needle), "missing `{needle}` in {out:?}");
    }
    // One document: the findings, the counts, the exit code.
    let json = lab.run(&["-o", "json", "doctor"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "port 15432" && f["level"] == "blocking"),
        "{doc}"
    );
    assert_eq!(
        (doc["exit_code"].as_u64(), doc["result"].as_str()),
        (Some(3), Some("failed"))
    );
    assert!(doc["blocking"].as_u64().unwrap() >= 2, "{doc}");
}

#[test]
fn sim_a_taken_port_stops_up_before_any_cluster_is_created() {
    let lab = Lab::new("port-up");
    lab.world
        .with(|s| s.host.busy_ports.insert(80, "nginx (pid 99)".into()))
        .unwrap();
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("host port 80") && out.stderr.contains("nginx (pid 99)"),
        "{out:?}"
    );
    assert!(lab.mutations().is_empty(), "{:?}", lab.mutations());
}

#[test]
fn sim_a_proxy_without_no_proxy_is_explained() {
    use std::collections::BTreeMap;
    let lab = Lab::new("proxy");
    let host = lab.world.clone();
    let mut vars = BTreeMap::new();
    vars.insert("HTTPS_PROXY".to_string(), "http://proxy.corp:3128".to_string());
    vars.insert("NO_PROXY".to_string(), "localhost".to_string());
    let f = devenv::doctor::limits(&host, &vars);
    let p = f.iter().find(|f| f.check == "proxy").expect("a proxy finding");
    assert!(
        p.message.contains("127.0.0.1") && !p.message.contains("localhost,"),
        "{p:?}"
    );
    assert_eq!(
        p.help.as_deref(),
        Some("export NO_PROXY=localhost,127.0.0.1,.svc,10.96.0.0/12,10.244.0.0/16")
    );
}

fn devenv_with_path(path: &str, args: &[&str], project: &TempDir, state: &TempDir) -> (i32, String, String) {
    let state_dir = state.path().join("state");
    let out = crate::common::devenv(project.path(), &state_dir)
        .clean_env(&state_dir)
        .env_remove("CI")
        .args(args)
        .env("PATH", path)
        .env("HOME", state.path())
        .env("DOCKER_HOST", "unix:///nonexistent/devenv-test.sock")
        .output();
    (i32::from(out.code), out.stdout, out.stderr)
}

#[test]
fn real_host_with_no_tools_on_path_doctor_names_each_and_up_changes_nothing() {
    let project = TempDir::new("nopath");
    let state = TempDir::new("nopath-state");
    let empty = TempDir::new("empty-bin");
    let path = empty.path().display().to_string();
    let (code, stdout, _) = devenv_with_path(&path, &["doctor"], &project, &state);
    assert_eq!(code, 3, "{stdout}");
    for tool in ["docker", "kind", "helm", "kubectl"] {
        assert!(
            stdout.contains(&format!("✗ tool {tool}: {tool} is not installed")),
            "{tool}: {stdout}"
        );
    }
    assert!(stdout.contains("help: install Docker Engine"), "{stdout}");
    assert!(stdout.contains("help: `devenv tools install kind`"), "{stdout}");
    let (code, _, stderr) = devenv_with_path(&path, &["up"], &project, &state);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("nothing was changed") && stderr.contains("tool kind: kind is not installed"),
        "{stderr}"
    );
    assert!(
        !state.path().join("state").exists(),
        "up took the lock or wrote state although it stopped"
    );
}

#[test]
fn real_host_a_mapped_port_held_by_another_process_is_reported_by_number_before_any_cluster() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let project = TempDir::new("heldport");
    let state = TempDir::new("heldport-state");
    let kind = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/kind-config.yaml")).unwrap();
    project.write(
        "kind-config.yaml",
        &kind.replace("hostPort: 15432", &format!("hostPort: {port}")),
    );
    // Stand-in tools that only answer `version`: nothing else may run before the check stops `up`.
    let bin = TempDir::new("heldport-bin");
    for (tool, out) in [
        ("docker", "Docker version 28.2.2, build e6534b4"),
        ("kind", "kind v0.33.0 go1.26.7 linux/amd64"),
        ("helm", "v4.3.0+g1234"),
        ("kubectl", "{\"clientVersion\":{\"gitVersion\":\"v1.36.4\"}}"),
    ] {
        bin.write(tool, &format!("#!/bin/sh\nif [ \"$1\" = version ] || [ \"$1\" = --version ]; then echo '{out}'; exit 0; fi\necho \"$0 $*\" >> {}/calls\nexit 0\n", bin.path().display()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.path().join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let (code, _, stderr) = devenv_with_path(&path, &["up"], &project, &state);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "host port {port} (127.0.0.1:{port}, kind-config.yaml line 21) is taken by"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "the holder (this test) is named: {stderr}"
    );
    let calls = std::fs::read_to_string(bin.path().join("calls")).unwrap_or_default();
    assert!(!calls.contains("create"), "a cluster create was attempted: {calls}");
    drop(held);
}

#[test]
fn real_host_a_tool_whose_version_command_crashes_blocks_with_a_fix() {
    let project = TempDir::new("crashing-tool");
    let state = TempDir::new("crashing-tool-state");
    let bin = TempDir::new("crashing-tool-bin");
    for (tool, script) in [
        ("docker", "echo 'Docker version 28.2.2, build e6534b4'"),
        // A Go panic instead of a version, with colour codes.
        (
            "kind",
            "printf 'panic: runtime error: \\033[31minvalid memory address\\033[0m\\n' >&2; exit 2",
        ),
        ("helm", "echo 'v4.3.0+g1234'"),
        ("kubectl", "echo '{\"clientVersion\":{\"gitVersion\":\"v1.36.4\"}}'"),
    ] {
        bin.write(tool, &format!("#!/bin/sh\n{script}\n"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.path().join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let (code, stdout, _) = devenv_with_path(&path, &["doctor"], &project, &state);
    assert_eq!(code, 3, "{stdout}");
    assert!(
        stdout.contains("✗ tool kind: kind at")
            && stdout.contains("does not work")
            && stdout.contains("invalid memory address"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("version unknown") && !stdout.contains('\x1b'),
        "{stdout}"
    );
    assert!(stdout.contains("help: reinstall it"), "{stdout}");
}

//! PostgreSQL's persistent data directory against the REAL Docker engine (no cluster: kind nodes
//! need privileged containers, which this machine refuses). A container running as the chart's
//! uid 999, with devenv's data directory bind-mounted where the chart mounts its claim, stands in
//! for the database pod: what it may create there is what the real pod may. Then `devenv down
//! --purge`, run as a user that is not root, must remove what uid 999 left (mode 0700).
//!
//! Needs `dockerd` running and `busybox` (busybox-static); `.ci/run` provides both. With CI set, a
//! missing engine fails the test; elsewhere the test says it did not run.

use devenv::components::postgresql::{DATA_DIR, PGDATA, UID};
use devenv::exec::Cancel;
use devenv::process::{Cmd, Runner, SystemRunner};
use devenv::world::HostDir;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// An image with busybox and the applets the tests use, imported from a tar stream (nothing is
/// pulled). Tagged under a name of its own so that no image of the user's is touched.
const IMAGE: &str = "devenv-test/busybox:applets";

fn sh(args: &[&str]) -> Result<String, String> {
    let cmd = Cmd::new(args[0])
        .args(args[1..].iter().copied())
        .timeout(std::time::Duration::from_secs(120));
    SystemRunner
        .run(&cmd, &Cancel::new())
        .map(|o| o.stdout)
        .map_err(|e| e.to_string())
}

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

fn ensure_image() {
    if sh(&["docker", "image", "inspect", IMAGE]).is_ok() {
        return;
    }
    let dir = crate::common::TempDir::new("applets-rootfs");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed");
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "rm", "mkdir", "chmod", "ls", "cat", "echo", "id"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tarball = dir.path().join("rootfs.tar");
    sh(&[
        "tar",
        "-C",
        &root.display().to_string(),
        "-cf",
        &tarball.display().to_string(),
        ".",
    ])
    .unwrap();
    sh(&[
        "docker",
        "import",
        "--change",
        "ENV PATH=/bin",
        &tarball.display().to_string(),
        IMAGE,
    ])
    .unwrap();
}

/// The database's first start as the chart's pod would run it: uid 999, the claim's directory
/// at `/var/lib/postgresql/data`, and the entrypoint's own steps (`mkdir -p "$PGDATA"`, `chmod
/// 700 "$PGDATA"`, then initdb writing into it).
fn start_database_in(dir: &Path) -> Result<String, String> {
    sh(&[
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        &format!("{UID}:{UID}"),
        "--mount",
        &format!("type=bind,source={},target=/var/lib/postgresql/data", dir.display()),
        IMAGE,
        "sh",
        "-c",
        "mkdir -p \"$0\" && chmod 700 \"$0\" && echo 18 > \"$0/PG_VERSION\" && mkdir -p \"$0/base/1\" && echo row > \"$0/base/1/1259\"",
        PGDATA,
    ])
}

/// A user that is not root, for `devenv down --purge`: nobody, with the engine socket's group.
fn as_nobody(cmd: &mut std::process::Command) {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return; // already not root
    }
    let socket_gid = std::fs::metadata("/var/run/docker.sock").map(|m| m.gid()).unwrap_or(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let groups = [socket_gid];
            if libc::setgroups(1, groups.as_ptr()) != 0 || libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn chown_tree(path: &Path, uid: u32) {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        sh(&["chown", "-R", &format!("{uid}:{uid}"), &path.display().to_string()]).unwrap();
    }
}

/// A project whose versions.yaml names the test image as the smoke tests' busybox (the image
/// devenv may remove PostgreSQL's files with when the node image is not here).
fn project(probe_image: &str) -> crate::common::TempDir {
    let p = crate::common::TempDir::new("datadir-proj");
    let versions = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/versions.yaml"))
        .unwrap()
        .replace(
            "probeImage: docker.io/library/busybox:1.37.0",
            &format!("probeImage: {probe_image}"),
        );
    p.write("versions.yaml", &versions);
    p.write("devenv.yaml", "name: pgtest\n");
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    p
}

fn down_purge(project: &Path, state: &Path) -> crate::common::Out {
    let mut run = crate::common::devenv(project, state)
        .clean_env(state)
        .args(["down", "--purge"])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", state);
    as_nobody(run.command());
    run.output()
}

#[test]
fn real_engine_uid_999_can_start_in_the_data_directory_devenv_makes_and_not_in_one_the_kubelet_makes() {
    if !engine_available() {
        return;
    }
    ensure_image();
    let base = crate::common::TempDir::new("datadir-ok");
    let state = devenv::state::State::new(base.path(), "pgtest");
    let dir = state.prepare_host_dir(&HostDir::Data(DATA_DIR)).unwrap();
    assert_eq!(dir, base.path().join("pgtest/data").join(DATA_DIR));
    start_database_in(&dir).unwrap_or_else(|e| panic!("uid {UID} could not create PGDATA in {}: {e}", dir.display()));
    let pgdata = dir.join(PGDATA.trim_start_matches("/var/lib/postgresql/data/"));
    let meta = std::fs::metadata(&pgdata).unwrap();
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (UID, 0o700));
    assert_eq!(std::fs::read_to_string(pgdata.join("base/1/1259")).unwrap(), "row\n");

    // A missing hostPath directory as the kubelet makes it: root's (or this user's), mode 0755.
    let kubelet = base.path().join("kubelet-made");
    std::fs::create_dir(&kubelet).unwrap();
    std::fs::set_permissions(&kubelet, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = start_database_in(&kubelet).unwrap_err();
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn real_engine_down_purge_as_a_user_removes_the_files_uid_999_left() {
    if !engine_available() {
        return;
    }
    ensure_image();
    let base = crate::common::TempDir::new("datadir-purge");
    let state = devenv::state::State::new(base.path(), "pgtest");
    let dir = state.prepare_host_dir(&HostDir::Data(DATA_DIR)).unwrap();
    state.credentials().unwrap();
    // The state directory is the user's; then the database writes its files as uid 999.
    chown_tree(base.path(), 65534);
    start_database_in(&dir).unwrap();
    // As the server leaves it: PGDATA uid 999's, mode 0700, with files in it.
    let pgdata = dir.join("pg");
    assert_eq!(std::fs::metadata(&pgdata).unwrap().uid(), UID);

    // No image to remove them with: refused before anything is removed.
    let p = project("devenv-test/busybox:not-here");
    let out = down_purge(p.path(), base.path());
    let stderr = &out.stderr;
    assert_eq!(out.code, 3, "{stderr}");
    assert!(
        stderr.contains("nothing was removed") && stderr.contains("help:"),
        "{stderr}"
    );
    assert!(pgdata.join("PG_VERSION").exists() && base.path().join("pgtest/credentials.json").exists());

    // With the test image as the smoke tests' busybox: removed as root in a throwaway container,
    // then the state, credentials.json last of all.
    let p = project(IMAGE);
    let out = down_purge(p.path(), base.path());
    let stderr = &out.stderr;
    assert_eq!(out.code, 0, "{stderr}");
    assert!(
        stderr.contains("remove the persistent data") && stderr.contains("as root"),
        "{stderr}"
    );
    assert!(!base.path().join("pgtest").exists(), "{stderr}");
}

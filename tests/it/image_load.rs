//! `devenv load` against the REAL Docker engine, into fake kind nodes: containers labelled like
//! kind's, from a locally imported busybox image, whose `ctr` and `crictl` are the scripts in
//! tests/fake-node/ (they record what they receive). The images loaded are made locally too
//! (`docker import` of a small tar): nothing is pulled. No Kubernetes is involved.
//!
//! Needs dockerd and busybox-static (`.ci/run` provides both); with CI set, their absence fails.

use std::process::Command;

fn docker(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("docker").args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn engine_available() -> bool {
    match docker(&["info", "--format", "{{.ServerVersion}}"]) {
        Ok(_) => true,
        Err(e) if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") => {
            panic!("CI is set but the Docker engine does not answer: {e}")
        }
        Err(e) => {
            eprintln!("NOT RUN: this test needs a running Docker engine ({e})");
            false
        }
    }
}

fn import(dir: &std::path::Path, tag: &str) {
    let tar = dir.with_extension("tar");
    let st = Command::new("tar")
        .args(["-C", &dir.display().to_string(), "-cf", &tar.display().to_string(), "."])
        .status()
        .unwrap();
    assert!(st.success());
    docker(&["import", &tar.display().to_string(), tag]).unwrap();
    let _ = std::fs::remove_file(tar);
}

const NODE_IMAGE: &str = "devenv-test-kindnode:2";

/// busybox, the shell tools the stand-in scripts use, and the stand-ins as ctr and crictl.
fn ensure_node_image() {
    if docker(&["image", "inspect", NODE_IMAGE]).is_ok() {
        return;
    }
    let root = crate::common::TempDir::new("noderoot");
    let p = root.path();
    std::fs::create_dir_all(p.join("bin")).unwrap();
    std::fs::create_dir_all(p.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(p.join("etc")).unwrap();
    std::fs::create_dir_all(p.join("tmp")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|b| std::path::Path::new(b).exists())
        .expect("busybox-static");
    std::fs::copy(busybox, p.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "awk", "tr", "cat", "tar", "ls", "wc", "mkdir", "touch", "sleep", "rm", "echo", "printf",
    ] {
        std::os::unix::fs::symlink("busybox", p.join("bin").join(applet)).unwrap();
    }
    for tool in ["ctr", "crictl"] {
        std::fs::copy(
            format!("{}/tests/fake-node/{tool}", env!("CARGO_MANIFEST_DIR")),
            p.join("usr/local/bin").join(tool),
        )
        .unwrap();
    }
    import(p, NODE_IMAGE);
}

/// A small image of its own, with unique content.
fn app_image(tag: &str) {
    let root = crate::common::TempDir::new("approot");
    root.write(
        "app/data",
        &format!("{tag} {:?} {}", std::time::SystemTime::now(), "x".repeat(50_000)),
    );
    import(root.path(), tag);
}

struct Cluster {
    name: String,
    nodes: Vec<String>,
    images: Vec<String>,
}

impl Cluster {
    fn new(tag: &str) -> Cluster {
        let name = format!("devenvload-{tag}-{}", std::process::id());
        let mut nodes = vec![];
        for role in ["control-plane", "worker"] {
            let node = format!("{name}-{role}");
            docker(&[
                "run",
                "--detach",
                "--name",
                &node,
                "--network",
                "none",
                "--label",
                &format!("io.x-k8s.kind.cluster={name}"),
                "--label",
                &format!("io.x-k8s.kind.role={role}"),
                "--env",
                "PATH=/usr/local/bin:/bin",
                NODE_IMAGE,
                "/bin/sleep",
                "3600",
            ])
            .unwrap();
            nodes.push(node);
        }
        Cluster {
            name,
            nodes,
            images: vec![],
        }
    }

    fn load(&self, images: &[&str]) -> (i32, String) {
        let project = crate::common::TempDir::new("load-proj");
        let state = crate::common::TempDir::new("load-state");
        let out = crate::common::devenv(project.path(), state.path())
            .args(["load", "-n", &self.name])
            .args(images)
            .output();
        (i32::from(out.code), out.stderr)
    }

    fn received(&self, node: &str) -> Vec<Vec<u8>> {
        let list =
            String::from_utf8(docker(&["exec", node, "ls", "/var/lib/fake/received"]).unwrap_or_default()).unwrap();
        let mut files: Vec<&str> = list.split_whitespace().collect();
        files.sort();
        files
            .iter()
            .map(|f| docker(&["exec", node, "cat", &format!("/var/lib/fake/received/{f}")]).unwrap())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut args = vec!["rm", "--force"];
        args.extend(self.nodes.iter().map(String::as_str));
        let _ = docker(&args);
        for i in &self.images {
            let _ = docker(&["rmi", "--force", i]);
        }
    }
}

#[test]
fn real_engine_load_streams_docker_save_into_every_node_skips_then_retags() {
    if !engine_available() {
        return;
    }
    ensure_node_image();
    let mut c = Cluster::new("ok");
    let app = format!("devenv-test-app-{}:1", std::process::id());
    app_image(&app);
    c.images.push(app.clone());

    let (code, err) = c.load(&[&app]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("{app}: loaded into {}, {}", c.nodes[0], c.nodes[1])),
        "{err}"
    );
    let saved = docker(&["save", &app]).unwrap();
    for node in &c.nodes {
        let got = c.received(node);
        assert_eq!(got.len(), 1, "{node} received {} archives", got.len());
        assert_eq!(
            got[0].len(),
            saved.len(),
            "{node}: bytes received differ in length from `docker save`"
        );
        assert!(
            got[0] == saved,
            "{node}: the bytes received are not `docker save {app}`"
        );
        let args = String::from_utf8(docker(&["exec", node, "cat", "/var/lib/fake/import-args"]).unwrap()).unwrap();
        assert_eq!(
            args.trim(),
            "--namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -"
        );
    }

    // Unchanged: nothing is sent again.
    let (code, err) = c.load(&[&app]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("{app}: already on all 2 node(s)")), "{err}");
    assert!(
        c.nodes.iter().all(|n| c.received(n).len() == 1),
        "a second load sent bytes"
    );

    // The same image under a new tag: tagged in the nodes, not sent.
    let again = format!("devenv-test-app-{}:again", std::process::id());
    docker(&["tag", &app, &again]).unwrap();
    c.images.push(again.clone());
    let (code, err) = c.load(&[&again]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("tagged on") && err.contains("already there under another name"),
        "{err}"
    );
    assert!(c.nodes.iter().all(|n| c.received(n).len() == 1), "a retag sent bytes");
}

#[test]
fn real_engine_a_node_that_fails_the_import_fails_the_load_with_its_name_and_message() {
    if !engine_available() {
        return;
    }
    ensure_node_image();
    let mut c = Cluster::new("fail");
    let app = format!("devenv-test-app-{}:fail", std::process::id());
    app_image(&app);
    c.images.push(app.clone());
    docker(&["exec", &c.nodes[1], "touch", "/etc/fake-ctr-fail"]).unwrap();
    let (code, err) = c.load(&[&app]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("node {}", c.nodes[1])), "{err}");
    assert!(err.contains("no space left on device"), "{err}");
    assert!(
        err.contains("help: the node's disk is full") && !err.contains("help: if it says \"content digest"),
        "the help speaks of the full disk: {err}"
    );
}

#[test]
fn real_engine_an_image_that_is_not_on_the_host_is_named_with_the_fix() {
    if !engine_available() {
        return;
    }
    ensure_node_image();
    let c = Cluster::new("missing");
    let (code, err) = c.load(&["devenv-test-no-such-image:1"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("image `devenv-test-no-such-image:1` is not on this machine"),
        "{err}"
    );
    assert!(err.contains("docker build -t devenv-test-no-such-image:1 ."), "{err}");
}

/// The test registry (Debian's docker-registry, started by scripts/test-servers); under CI its
/// absence is a failure.
fn registry() -> Option<String> {
    match std::env::var("DEVENV_TEST_REGISTRY") {
        Ok(r) if !r.is_empty() => Some(r),
        _ if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") => {
            panic!(
                "CI is set but DEVENV_TEST_REGISTRY is not: `eval \"$(bash scripts/test-servers)\"` starts the registry"
            )
        }
        _ => {
            eprintln!("NOT RUN: this test needs DEVENV_TEST_REGISTRY (scripts/test-servers)");
            None
        }
    }
}

#[test]
fn real_engine_the_image_cache_pulls_a_pinned_image_from_a_real_registry_once_and_the_nodes_get_it_by_id() {
    if !engine_available() {
        return;
    }
    let Some(registry) = registry() else { return };
    ensure_node_image();
    use devenv::world::ImageTransport;
    let api = devenv::adapters::image_api::DockerApi {
        runner: std::sync::Arc::new(devenv::process::SystemRunner),
    };
    let cancel = devenv::exec::Cancel::new();
    // A pinned image as a registry serves it: built here, pushed, and gone from the engine.
    let built = format!("devenv-test-app-{}:cache", std::process::id());
    let pinned = format!("{registry}/devenv-test/pinned-{}:1", std::process::id());
    app_image(&built);
    docker(&["tag", &built, &pinned]).unwrap();
    docker(&["push", "--quiet", &pinned]).unwrap();
    docker(&["rmi", &built, &pinned]).unwrap();
    assert!(api.local_image(&pinned, &cancel).unwrap().is_none());

    // The cache's pull: the engine pulls it from the registry, for the nodes' platform.
    let arch = String::from_utf8(docker(&["info", "--format", "{{.Architecture}}"]).unwrap()).unwrap();
    let platform = format!("linux/{}", devenv::images::arch(arch.trim()));
    api.pull(&pinned, Some(&platform), &cancel).unwrap();
    let here = api.local_image(&pinned, &cancel).unwrap().expect("pulled");

    // Into the nodes from this machine, by ID, once per node; a second cluster (a cold `up`
    // after `down`) gets it from the host again, with no pull (the cache asks the engine first).
    for tag in ["cache1", "cache2"] {
        let mut c = Cluster::new(tag);
        if tag == "cache2" {
            c.images.push(pinned.clone());
        }
        let (code, err) = c.load(&[&pinned]);
        assert_eq!(code, 0, "{err}");
        for n in &c.nodes {
            assert_eq!(c.received(n).len(), 1, "{n}: {err}");
            let ids = String::from_utf8(docker(&["exec", n, "cat", "/var/lib/fake/images.txt"]).unwrap()).unwrap();
            assert!(ids.contains(&here.id), "{n} has it by ID: {ids}");
        }
    }

    // One no registry serves: the engine's own message, naming the image.
    let missing = format!("{registry}/devenv-test/missing-{}:1", std::process::id());
    let e = api.pull(&missing, Some(&platform), &cancel).unwrap_err().to_string();
    assert!(
        e.contains("manifest unknown")
            && e.contains(&missing)
            && e.lines().next().unwrap().starts_with("Error response from daemon"),
        "{e}"
    );
}

//! `devenv tools install` against a real HTTP server on 127.0.0.1 (a thread in this test): the
//! download, its SHA-256, the atomic install, and every way it can go wrong.

use crate::common::Lab;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the server does for one path.
#[derive(Clone)]
enum Serve {
    Full(Vec<u8>),
    /// Announces the full length, sends `n` bytes, then closes.
    CutAfter(Vec<u8>, usize),
    /// `302 Found` to this location.
    Redirect(String),
    /// Reads the request and never answers.
    Stall,
}

struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
    routes: Arc<Mutex<Vec<(String, Serve)>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let routes: Arc<Mutex<Vec<(String, Serve)>>> = Arc::default();
        let (h, r) = (hits.clone(), routes.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let route = r
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, s)| s.clone());
                match route {
                    None => {
                        let _ =
                            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                    Some(Serve::Full(body)) => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(&body);
                    }
                    Some(Serve::Redirect(to)) => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                    Some(Serve::Stall) => {
                        std::thread::spawn(move || {
                            std::thread::sleep(std::time::Duration::from_secs(120));
                            drop(s);
                        });
                    }
                    Some(Serve::CutAfter(body, cut)) => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(&body[..cut]);
                    }
                }
            }
        });
        Server { port, hits, routes }
    }
    /// Serves `serve` at `path` from now on (in place of what it served before).
    fn route(&self, path: &str, serve: Serve) {
        let mut r = self.routes.lock().unwrap();
        r.retain(|(p, _)| p != path);
        r.push((path.to_string(), serve));
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn platform() -> String {
    let (os, arch) = devenv::tools::install::platform();
    format!("{os}-{arch}")
}

/// versions.yaml with kind (and helm) downloaded from the test server.
fn versions(server: &Server, kind_sum: &str, helm_sum: &str) -> String {
    let v = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/versions.yaml")).unwrap();
    let p = platform();
    v.replace(
        "    url: https://kind.sigs.k8s.io/dl/v{version}/kind-{os}-{arch}",
        &format!(
            "    url: http://127.0.0.1:{}/kind-{{os}}-{{arch}}\n    sha256:\n      {p}: {kind_sum}",
            server.port
        ),
    )
    .replace(
        "    url: https://get.helm.sh/helm-v{version}-{os}-{arch}.tar.gz",
        &format!(
            "    url: http://127.0.0.1:{}/helm-v{{version}}-{{os}}-{{arch}}.tar.gz\n    sha256:\n      {p}: {helm_sum}",
            server.port
        ),
    )
}

fn bin(lab: &Lab) -> std::path::PathBuf {
    lab.state.path().join(".local/share/devenv/bin")
}

fn leftovers(lab: &Lab) -> Vec<String> {
    std::fs::read_dir(bin(lab))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".download.") || n.contains(".new."))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_good_download_installs_executable_and_a_second_install_downloads_nothing() {
    let server = Server::start();
    let body = b"#!/bin/sh\necho kind v0.33.0 go1.26.7 linux/amd64\n".repeat(2000);
    server.route(&format!("/kind-{}", platform()), Serve::Full(body.clone()));
    let lab = Lab::new("dl-good");
    lab.project
        .write("versions.yaml", &versions(&server, &sha(&body), &"0".repeat(64)));
    let out = lab.run(&["tools", "install", "kind"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "kind 0.33.0 installed at {} ({} bytes, SHA-256 checked against versions.yaml)",
            bin(&lab).join("kind").display(),
            body.len()
        )),
        "{out:?}"
    );
    let installed = bin(&lab).join("kind");
    assert_eq!(std::fs::read(&installed).unwrap(), body);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(server.hits(), 1);
    let again = lab.run(&["tools", "install", "kind"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stderr.contains("already installed") && again.stderr.contains("nothing downloaded"),
        "{again:?}"
    );
    assert_eq!(server.hits(), 1, "the second install made a request");
    // A binary changed behind devenv's back is downloaded again.
    std::fs::write(&installed, b"tampered").unwrap();
    assert_eq!(lab.run(&["tools", "install", "kind"]).code, 0);
    assert_eq!(server.hits(), 2);
    assert_eq!(std::fs::read(&installed).unwrap(), body);
}

#[test]
fn a_wrong_checksum_is_refused_and_leaves_nothing_behind() {
    let server = Server::start();
    let body = b"not the binary you pinned".to_vec();
    server.route(&format!("/kind-{}", platform()), Serve::Full(body.clone()));
    let lab = Lab::new("dl-badsum");
    lab.project.write(
        "versions.yaml",
        &versions(&server, &sha(b"something else"), &"0".repeat(64)),
    );
    let out = lab.run(&["tools", "install", "kind"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "has SHA-256 {}, but versions.yaml pins {}",
            sha(&body),
            sha(b"something else")
        )),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("nothing was installed") && out.stderr.contains("help:"),
        "{out:?}"
    );
    assert!(!bin(&lab).join("kind").exists());
    assert!(leftovers(&lab).is_empty(), "{:?}", leftovers(&lab));
}

#[test]
fn an_interrupted_download_leaves_no_partial_file() {
    let server = Server::start();
    let body = vec![7u8; 1 << 20];
    server.route(&format!("/kind-{}", platform()), Serve::CutAfter(body.clone(), 300_000));
    let lab = Lab::new("dl-cut");
    lab.project
        .write("versions.yaml", &versions(&server, &sha(&body), &"0".repeat(64)));
    let out = lab.run(&["tools", "install", "kind"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("broke off"), "{out:?}");
    assert!(!bin(&lab).join("kind").exists());
    assert!(leftovers(&lab).is_empty(), "{:?}", leftovers(&lab));
}

#[test]
fn an_archived_tool_is_verified_then_extracted() {
    let server = Server::start();
    let p = platform();
    let helm = b"#!/bin/sh\necho v4.3.0+gabc\n".to_vec();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(helm.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, format!("{p}/helm"), helm.as_slice())
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    let archive = gz.finish().unwrap();
    server.route(&format!("/helm-v4.3.0-{p}.tar.gz"), Serve::Full(archive.clone()));
    let lab = Lab::new("dl-tar");
    lab.project
        .write("versions.yaml", &versions(&server, &"0".repeat(64), &sha(&archive)));
    let out = lab.run(&["tools", "install", "helm"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read(bin(&lab).join("helm")).unwrap(), helm);
    // Checked against the kept archive, whose sum is the pin: nothing downloaded.
    let hits = server.hits();
    let out = lab.run(&["tools", "install", "helm"]);
    assert!(out.stderr.contains("already installed"), "{out:?}");
    assert_eq!(server.hits(), hits);
    // A binary changed behind devenv's back no longer is the archive's member.
    std::fs::write(bin(&lab).join("helm"), b"tampered").unwrap();
    let out = lab.run(&["tools", "install", "helm"]);
    assert!(!out.stderr.contains("already installed"), "{out:?}");
    assert_eq!(std::fs::read(bin(&lab).join("helm")).unwrap(), helm);
}

fn archive_with(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_size(if kind.is_file() { data.len() as u64 } else { 0 });
        header.set_mode(0o755);
        if !kind.is_file() {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        tar.append_data(&mut header, path, if kind.is_file() { *data } else { &[][..] })
            .unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_link_in_the_archive_is_never_installed_as_the_binary() {
    let p = platform();
    for kind in [tar::EntryType::Symlink, tar::EntryType::Link] {
        let server = Server::start();
        let archive = archive_with(&[(&format!("{p}/helm"), kind, b"")]);
        server.route(&format!("/helm-v4.3.0-{p}.tar.gz"), Serve::Full(archive.clone()));
        let lab = Lab::new("dl-tar-link");
        lab.project
            .write("versions.yaml", &versions(&server, &"0".repeat(64), &sha(&archive)));
        let out = lab.run(&["tools", "install", "helm"]);
        assert_eq!(out.code, 1, "{kind:?}: {out:?}");
        assert!(
            out.stderr.contains("is not a regular file") && out.stderr.contains("nothing was installed"),
            "{out:?}"
        );
        assert!(!bin(&lab).join("helm").exists());
    }
}

#[test]
fn an_archive_url_needs_the_binarys_path_in_it() {
    let server = Server::start();
    let lab = Lab::new("dl-tar-nopath");
    let v = versions(&server, &"0".repeat(64), &"0".repeat(64)).replace("    archivePath: \"{os}-{arch}/helm\"\n", "");
    lab.project.write("versions.yaml", &v);
    let out = lab.run(&["tools", "install", "helm"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("`archivePath` does not say which file in it is helm"),
        "{out:?}"
    );
}

#[test]
fn a_replaced_binary_is_not_already_installed_whatever_a_marker_says() {
    let server = Server::start();
    let body = b"#!/bin/sh\necho kind v0.33.0\n".to_vec();
    server.route(&format!("/kind-{}", platform()), Serve::Full(body.clone()));
    let lab = Lab::new("dl-marker");
    lab.project
        .write("versions.yaml", &versions(&server, &sha(&body), &"0".repeat(64)));
    assert_eq!(lab.run(&["tools", "install", "kind"]).code, 0);
    // Replaced, with the marker earlier devenvs trusted rewritten to match.
    let tampered = b"#!/bin/sh\necho pwned\n";
    std::fs::write(bin(&lab).join("kind"), tampered).unwrap();
    std::fs::write(
        bin(&lab).join(".kind.installed"),
        format!("0.33.0 {} {}\n", sha(&body), sha(tampered)),
    )
    .unwrap();
    let out = lab.run(&["tools", "install", "kind"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("already installed"), "{out:?}");
    assert_eq!(std::fs::read(bin(&lab).join("kind")).unwrap(), body);
}

#[test]
fn urls_are_parsed_and_redirects_never_leave_for_plain_http_elsewhere() {
    let lab = Lab::new("dl-urls");
    for url in [
        "http://127.0.0.1@10.1.2.3/kind",
        "http://127.0.0.1.example.invalid/kind",
        "http://10.1.2.3/kind",
        "ftp://127.0.0.1/kind",
    ] {
        let v = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/versions.yaml"))
            .unwrap()
            .replace("https://kind.sigs.k8s.io/dl/v{version}/kind-{os}-{arch}", url);
        lab.project.write("versions.yaml", &v);
        let out = lab.run(&["tools", "install", "kind"]);
        assert_eq!(out.code, 2, "{url}: {out:?}");
        assert!(out.stderr.contains("tools.kind.url must be https://"), "{url}: {out:?}");
    }
    let server = Server::start();
    server.route(
        &format!("/kind-{}", platform()),
        Serve::Redirect("http://10.1.2.3/kind".into()),
    );
    lab.project
        .write("versions.yaml", &versions(&server, &"0".repeat(64), &"0".repeat(64)));
    let out = lab.run(&["tools", "install", "kind"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("refused a redirect"), "{out:?}");
    assert!(!bin(&lab).join("kind").exists());
}

#[test]
fn a_server_that_never_answers_does_not_outlast_an_interrupt() {
    let server = Server::start();
    server.route(&format!("/kind-{}", platform()), Serve::Stall);
    let lab = Lab::new("dl-stall");
    lab.project
        .write("versions.yaml", &versions(&server, &"0".repeat(64), &"0".repeat(64)));
    let cancel = devenv::exec::Cancel::new();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        c.cancel(devenv::exec::Reason::Signal(devenv::error::Signal::Term));
    });
    let t = std::time::Instant::now();
    let out = lab.run_with(&["tools", "install", "kind"], cancel);
    assert_eq!(out.code, 143, "{out:?}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_tool_without_a_pinned_sum_or_a_checksum_file_is_not_installed() {
    let lab = Lab::new("dl-nosum");
    let v = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/versions.yaml")).unwrap();
    let v = v.replace(
        "    sha256Url: https://dl.k8s.io/release/v{version}/bin/{os}/{arch}/kubectl.sha256\n",
        "",
    );
    lab.project.write("versions.yaml", &v);
    let out = lab.run(&["tools", "install", "kubectl"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("no SHA-256 is pinned for kubectl 1.36.4 and versions.yaml names no checksum file"),
        "{out:?}"
    );
    let out = lab.run(&["tools", "install", "kubctl"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("did you mean `kubectl`?"), "{out:?}");
}

/// versions.yaml with kind from the test server and no sum pinned: its checksum file decides.
fn versions_with_checksum_file(server: &Server) -> String {
    let v = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/versions.yaml")).unwrap();
    v.replace(
        "    url: https://kind.sigs.k8s.io/dl/v{version}/kind-{os}-{arch}\n    sha256Url: https://kind.sigs.k8s.io/dl/v{version}/kind-{os}-{arch}.sha256sum",
        &format!(
            "    url: http://127.0.0.1:{p}/kind-{{os}}-{{arch}}\n    sha256Url: http://127.0.0.1:{p}/kind-{{os}}-{{arch}}.sha256sum",
            p = server.port
        ),
    )
}

fn installed(lab: &Lab) -> bool {
    bin(lab).join("kind").exists()
}

#[test]
fn with_no_sum_pinned_the_projects_checksum_file_verifies_and_its_sum_is_locked_for_every_later_install() {
    let server = Server::start();
    let body = b"#!/bin/sh\necho kind v0.33.0\n".repeat(500);
    let p = platform();
    server.route(&format!("/kind-{p}"), Serve::Full(body.clone()));
    // As `shasum -a 256` writes it (kind's release script): the sum, two spaces, the path.
    server.route(
        &format!("/kind-{p}.sha256sum"),
        Serve::Full(format!("{}  /home/release/bin/kind-{p}\n", sha(&body)).into_bytes()),
    );
    let lab = Lab::new("dl-sumfile");
    lab.project
        .write("versions.yaml", &versions_with_checksum_file(&server));
    let out = lab.run(&["tools", "install", "kind"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("SHA-256 checked against the project's checksum file"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(bin(&lab).join("kind")).unwrap(), body);
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.project.path().join("versions.lock")).unwrap()).unwrap();
    assert_eq!(lock["kind"]["0.33.0"][&p], sha(&body));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(lab.project.path().join("versions.lock"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644,
        "the team's file, no secret in it"
    );

    // The release is replaced upstream, checksum file and all: the lock refuses the new sum.
    let changed = b"#!/bin/sh\necho something else\n".repeat(500);
    server.route(&format!("/kind-{p}"), Serve::Full(changed.clone()));
    server.route(
        &format!("/kind-{p}.sha256sum"),
        Serve::Full(format!("{}  kind-{p}\n", sha(&changed)).into_bytes()),
    );
    std::fs::remove_file(bin(&lab).join("kind")).unwrap();
    let out = lab.run(&["tools", "install", "kind"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!("but versions.lock pins {}", sha(&body)))
            && out.stderr.contains("a sum that changes is refused"),
        "{out:?}"
    );
    assert!(!installed(&lab), "an unverified binary was installed");
    assert!(leftovers(&lab).is_empty(), "{:?}", leftovers(&lab));
}

#[test]
fn a_download_that_does_not_match_its_checksum_file_is_refused_and_nothing_is_locked() {
    let server = Server::start();
    let p = platform();
    server.route(&format!("/kind-{p}"), Serve::Full(b"tampered".to_vec()));
    server.route(
        &format!("/kind-{p}.sha256sum"),
        Serve::Full(format!("{}  kind-{p}\n", sha(b"the real one")).into_bytes()),
    );
    let lab = Lab::new("dl-sumfile-bad");
    lab.project
        .write("versions.yaml", &versions_with_checksum_file(&server));
    let out = lab.run(&["tools", "install", "kind"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("its checksum file http://127.0.0.1:"), "{out:?}");
    assert!(!installed(&lab));
    assert!(!lab.project.path().join("versions.lock").exists());
}

#[test]
fn a_missing_checksum_file_installs_nothing() {
    let server = Server::start();
    let p = platform();
    server.route(&format!("/kind-{p}"), Serve::Full(b"#!/bin/sh\n".to_vec()));
    let lab = Lab::new("dl-sumfile-404");
    lab.project
        .write("versions.yaml", &versions_with_checksum_file(&server));
    let out = lab.run(&["tools", "install", "kind"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("its checksum file could not be read") && out.stderr.contains("404"),
        "{out:?}"
    );
    assert!(!installed(&lab));
    assert_eq!(
        server.hits(),
        1,
        "the binary itself was fetched without a sum to check it against"
    );
}

#[test]
fn checksum_files_are_read_as_projects_publish_them() {
    use devenv::tools::install::parse_sum;
    let s = "a".repeat(64);
    assert_eq!(parse_sum(&s).as_deref(), Some(s.as_str()));
    assert_eq!(
        parse_sum(&format!("{s}  kind-linux-amd64\n")).as_deref(),
        Some(s.as_str())
    );
    assert_eq!(parse_sum(&format!("{}\n", "B".repeat(64))), Some("b".repeat(64)));
    assert_eq!(parse_sum("<html>Not Found</html>"), None);
    assert_eq!(parse_sum(&"a".repeat(63)), None);
    assert_eq!(parse_sum(""), None);
}

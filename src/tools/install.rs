//! `devenv tools install`: download a pinned tool, check its SHA-256 before anything becomes
//! executable, and move it into devenv's own bin dir atomically. Never touches system paths.

use crate::error::{Error, Result};
use crate::exec::Cancel;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything needed to install one tool.
#[derive(Debug, Clone)]
pub struct Request {
    pub tool: String,
    pub version: String,
    pub url: String,
    /// The pinned SHA-256 of what `url` serves (the archive, for an archived tool): from
    /// versions.yaml or versions.lock; None: read it from `checksum_url`.
    pub sha256: Option<String>,
    /// Where the pinned sum comes from, for the messages (`versions.yaml`, `versions.lock`).
    pub pinned_in: String,
    /// The checksum file the project publishes beside the download.
    pub checksum_url: Option<String>,
    /// For a .tar.gz: the member that is the binary.
    pub archive_path: Option<String>,
    pub bin_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `from_checksum_file`: the sum it was verified against came from the project's checksum
    /// file (nothing pinned it): the caller keeps it in versions.lock.
    Installed {
        bytes: u64,
        path: PathBuf,
        sha256: String,
        from_checksum_file: bool,
    },
    AlreadyInstalled {
        path: PathBuf,
    },
}

/// The SHA-256 in a checksum file as projects publish them: `<64 hex>` alone (kubectl's,
/// minikube's `.sha256`) or followed by the file's name (`sha256sum` output: kind's and helm's
/// `.sha256sum`). Anything else is None, never a guess.
pub fn parse_sum(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    (first.len() == 64 && first.chars().all(|c| c.is_ascii_hexdigit())).then(|| first.to_lowercase())
}

/// This machine's platform in the names release files use: (`linux`, `amd64`).
pub fn platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (os, arch)
}

pub fn expand(pattern: &str, version: &str) -> String {
    let (os, arch) = platform();
    pattern
        .replace("{version}", version)
        .replace("{os}", os)
        .replace("{arch}", arch)
}

/// Whether devenv downloads from `url`: https anywhere, plain http only from this machine (a
/// loopback address or `localhost`, as the URL parses, so `http://127.0.0.1@10.1.2.3/` is
/// 10.1.2.3), and never with credentials in the URL.
pub fn check_url(url: &str) -> std::result::Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("`{url}` carries credentials"));
    }
    let loopback = match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => return Err(format!("`{url}` names no host")),
    };
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        "http" => Err(format!("`{url}` is plain http to another machine")),
        other => Err(format!("`{url}` is not https ({other})")),
    }
}

/// Redirects are followed only to URLs devenv would download from itself, never from https down
/// to plain http, and at most 10.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("more than 10 redirects");
        }
        let downgrade = attempt.previous().iter().any(|u| u.scheme() == "https") && attempt.url().scheme() != "https";
        if downgrade {
            let to = attempt.url().to_string();
            return attempt.error(format!("refused a redirect from https to {to}"));
        }
        match check_url(attempt.url().as_str()) {
            Ok(_) => attempt.follow(),
            Err(why) => attempt.error(format!("refused a redirect: {why}")),
        }
    })
}

/// Temporary files removed on every exit path unless kept.
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A new file only this user can read, truncated if it exists.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

fn sha256_file(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(hex(&Sha256::digest(&bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::failed(
        format!("cannot write {}: {e}", path.display()),
        "check that devenv's data directory (DEVENV_DATA_DIR) is writable",
    )
}

/// Where an archived tool's verified download is kept, so that a later install can check the
/// installed binary against it without trusting anything but the pinned sum.
fn kept_archive(req: &Request) -> PathBuf {
    req.bin_dir.join(format!(".{}-{}.archive", req.tool, req.version))
}

/// Whether `dest` is exactly what the pin gives: the pinned sum itself for a plain download, or
/// the member of the kept archive whose sum is the pinned one.
fn already_installed(req: &Request, dest: &Path) -> bool {
    let Ok(installed) = std::fs::read(dest) else {
        return false;
    };
    let want = req.sha256.clone().unwrap_or_default().to_lowercase();
    match &req.archive_path {
        None => hex(&Sha256::digest(&installed)) == want,
        Some(member) => {
            let archive = kept_archive(req);
            sha256_file(&archive).as_deref() == Some(want.as_str())
                && read_member(&archive, &expand(member, &req.version)).is_ok_and(|b| b == installed)
        }
    }
}

/// Installs `req`, reporting `(bytes so far, total if known)` as the download goes.
pub fn install(req: &Request, cancel: &Cancel, progress: &dyn Fn(u64, Option<u64>)) -> Result<Outcome> {
    let (sum, from_file) = match (&req.sha256, &req.checksum_url) {
        (Some(s), _) => (s.to_lowercase(), false),
        (None, Some(url)) => (checksum_from(url, req, cancel)?, true),
        (None, None) => {
            return Err(Error::prerequisite(
                format!(
                    "no SHA-256 is pinned for {} {} and versions.yaml names no checksum file (`sha256Url`); nothing was installed",
                    req.tool, req.version
                ),
                format!(
                    "pin tools.{}.sha256 for this platform, or add its `sha256Url`",
                    req.tool
                ),
            ));
        }
    };
    let req = &Request {
        sha256: Some(sum.clone()),
        ..req.clone()
    };
    let dest = req.bin_dir.join(&req.tool);
    // A second install of the same pin downloads nothing, if the binary is still the pinned one.
    if already_installed(req, &dest) {
        return Ok(Outcome::AlreadyInstalled { path: dest });
    }
    std::fs::create_dir_all(&req.bin_dir).map_err(|e| io(&req.bin_dir, e))?;
    let pid = std::process::id();
    let download = req.bin_dir.join(format!(".{}.download.{pid}", req.tool));
    let staged = req.bin_dir.join(format!(".{}.new.{pid}", req.tool));
    let _scratch = Scratch(vec![download.clone(), staged.clone()]);

    let (bytes, digest) = fetch(&req.url, &download, cancel, progress)?;
    if digest != sum {
        let (pinned, help) = if from_file {
            (
                format!(
                    "its checksum file {} says {sum}",
                    req.checksum_url.as_deref().unwrap_or_default()
                ),
                "the download or its checksum file is not what the project published: try again later, and check the release page",
            )
        } else {
            (
                format!("{} pins {sum}", req.pinned_in),
                "a sum that changes is refused: if the release really changed, check the sum on the project's release page, then update (or delete the tool's entry in) that file",
            )
        };
        return Err(Error::failed(
            format!(
                "{} {}: the download from {} has SHA-256 {digest}, but {pinned}; nothing was installed",
                req.tool, req.version, req.url
            ),
            help,
        ));
    }
    // What becomes executable is the verified download itself, or a regular file from inside it.
    match &req.archive_path {
        Some(member) => {
            let binary = read_member(&download, &expand(member, &req.version))?;
            let mut out = create_private(&staged).map_err(|e| io(&staged, e))?;
            out.write_all(&binary).map_err(|e| io(&staged, e))?;
            out.sync_all().map_err(|e| io(&staged, e))?;
            std::fs::rename(&download, kept_archive(req)).map_err(|e| io(&kept_archive(req), e))?;
        }
        None => std::fs::rename(&download, &staged).map_err(|e| io(&staged, e))?,
    }
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).map_err(|e| io(&staged, e))?;
    std::fs::rename(&staged, &dest).map_err(|e| io(&dest, e))?;
    // Left by earlier devenvs, which trusted it: nothing reads it any more.
    let _ = std::fs::remove_file(req.bin_dir.join(format!(".{}.installed", req.tool)));
    Ok(Outcome::Installed {
        bytes,
        path: dest,
        sha256: sum,
        from_checksum_file: from_file,
    })
}

/// The sum in the project's checksum file (at most 4 KiB, fetched under the same URL rules).
fn checksum_from(url: &str, req: &Request, cancel: &Cancel) -> Result<String> {
    let pid = std::process::id();
    std::fs::create_dir_all(&req.bin_dir).map_err(|e| io(&req.bin_dir, e))?;
    let path = req.bin_dir.join(format!(".{}.sha256.{pid}", req.tool));
    let _scratch = Scratch(vec![path.clone()]);
    let (bytes, _) = fetch(url, &path, cancel, &|_, _| {}).map_err(|e| {
        Error::prerequisite(
            format!(
                "no SHA-256 is pinned for {} {}, and its checksum file could not be read: {e}; nothing was installed",
                req.tool, req.version
            ),
            format!(
                "pin tools.{}.sha256 for this platform in versions.yaml, or fix `sha256Url`",
                req.tool
            ),
        )
    })?;
    let text = if bytes <= 4096 {
        std::fs::read_to_string(&path).unwrap_or_default()
    } else {
        String::new()
    };
    parse_sum(&text).ok_or_else(|| {
        Error::prerequisite(
            format!(
                "{url} is not a checksum file (no SHA-256 at its start); nothing was installed for {} {}",
                req.tool, req.version
            ),
            format!("check tools.{}.sha256Url in versions.yaml", req.tool),
        )
    })
}

fn fetch(url: &str, to: &Path, cancel: &Cancel, progress: &dyn Fn(u64, Option<u64>)) -> Result<(u64, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(e.to_string(), ""))?;
    let help = "check the network (and HTTPS_PROXY); the URL comes from versions.yaml";
    let parsed = check_url(url).map_err(|why| {
        Error::prerequisite(
            format!("devenv will not download from it: {why}"),
            "use the project's https download URL in versions.yaml",
        )
    })?;
    rt.block_on(cancel.race(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            // A server that stalls mid-body: each read waits at most this long.
            .read_timeout(Duration::from_secs(30))
            .redirect(redirect_policy())
            .build()
            .map_err(|e| Error::failed(format!("cannot set up HTTPS: {e}"), ""))?;
        // A server that never sends its headers.
        let mut resp = tokio::time::timeout(Duration::from_secs(60), client.get(parsed).send())
            .await
            .map_err(|_| Error::failed(format!("cannot download {url}: no answer within 60s"), help))?
            .map_err(|e| Error::failed(format!("cannot download {url}: {}", error_chain(&e)), help))?;
        if !resp.status().is_success() {
            return Err(Error::failed(
                format!("cannot download {url}: the server answered {}", resp.status()),
                help,
            ));
        }
        let total = resp.content_length();
        let mut file = create_private(to).map_err(|e| io(to, e))?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        loop {
            if cancel.is_cancelled() {
                return Err(cancel.error());
            }
            let chunk = match tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await {
                Err(_) => continue,
                Ok(Err(e)) => {
                    return Err(Error::failed(
                        format!(
                            "the download from {url} broke off after {bytes} bytes: {}",
                            error_chain(&e)
                        ),
                        help,
                    ));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(|e| io(to, e))?;
            bytes += chunk.len() as u64;
            progress(bytes, total);
        }
        if let Some(t) = total
            && bytes != t
        {
            return Err(Error::failed(
                format!("the download from {url} broke off after {bytes} of {t} bytes"),
                help,
            ));
        }
        file.sync_all().map_err(|e| io(to, e))?;
        Ok((bytes, hex(&hasher.finalize())))
    }))
}

/// An error with its causes (reqwest's own message is only the outermost).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// The bytes of `member` in a .tar.gz, which must be a regular file there: a link in the archive
/// would install an empty file, or one from elsewhere, under the pinned sum's name.
fn read_member(archive: &Path, member: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(archive).map_err(|e| io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let bad = |e: std::io::Error| Error::failed(format!("cannot read the archive: {e}"), "");
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry
            .path()
            .map_err(bad)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if path != member {
            continue;
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_contiguous()) {
            return Err(Error::failed(
                format!("`{member}` in the archive is not a regular file ({kind:?}); nothing was installed"),
                "check `archivePath` in versions.yaml against the release's archive",
            ));
        }
        // At most 512 MiB: no tool is larger, and a hostile archive cannot fill the disk.
        let mut out = Vec::new();
        entry.by_ref().take(512 << 20).read_to_end(&mut out).map_err(bad)?;
        return Ok(out);
    }
    Err(Error::failed(
        format!("the archive has no `{member}`"),
        "check `archivePath` in versions.yaml",
    ))
}

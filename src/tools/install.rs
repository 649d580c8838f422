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
    /// The pinned SHA-256 of what `url` serves (the archive, for an archived tool).
    pub sha256: String,
    /// For a .tar.gz: the member that is the binary.
    pub archive_path: Option<String>,
    pub bin_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Installed { bytes: u64, path: PathBuf },
    AlreadyInstalled { path: PathBuf },
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

/// Installs `req`, reporting `(bytes so far, total if known)` as the download goes.
pub fn install(req: &Request, cancel: &Cancel, progress: &dyn Fn(u64, Option<u64>)) -> Result<Outcome> {
    let dest = req.bin_dir.join(&req.tool);
    let marker = req.bin_dir.join(format!(".{}.installed", req.tool));
    // A second install of the same pin downloads nothing, if the binary is still the one installed.
    if let (Ok(m), Some(now)) = (std::fs::read_to_string(&marker), sha256_file(&dest)) {
        let f: Vec<&str> = m.split_whitespace().collect();
        if f.len() == 3 && f[0] == req.version && f[1] == req.sha256 && f[2] == now {
            return Ok(Outcome::AlreadyInstalled { path: dest });
        }
    }
    std::fs::create_dir_all(&req.bin_dir).map_err(|e| io(&req.bin_dir, e))?;
    let pid = std::process::id();
    let download = req.bin_dir.join(format!(".{}.download.{pid}", req.tool));
    let staged = req.bin_dir.join(format!(".{}.new.{pid}", req.tool));
    let _scratch = Scratch(vec![download.clone(), staged.clone()]);

    let (bytes, digest) = fetch(&req.url, &download, cancel, progress)?;
    if digest != req.sha256.to_lowercase() {
        return Err(Error::failed(
            format!(
                "{} {}: the download from {} has SHA-256 {digest}, but versions.yaml pins {}; nothing was installed",
                req.tool, req.version, req.url, req.sha256
            ),
            "if the release really changed, check the sum on the project's release page before updating versions.yaml",
        ));
    }
    match &req.archive_path {
        Some(member) => extract(&download, &expand(member, &req.version), &staged)?,
        None => std::fs::rename(&download, &staged).map_err(|e| io(&staged, e))?,
    }
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).map_err(|e| io(&staged, e))?;
    std::fs::rename(&staged, &dest).map_err(|e| io(&dest, e))?;
    let binary = sha256_file(&dest).unwrap_or_default();
    std::fs::write(
        &marker,
        format!("{} {} {binary}\n", req.version, req.sha256.to_lowercase()),
    )
    .map_err(|e| io(&marker, e))?;
    Ok(Outcome::Installed { bytes, path: dest })
}

fn fetch(url: &str, to: &Path, cancel: &Cancel, progress: &dyn Fn(u64, Option<u64>)) -> Result<(u64, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(e.to_string(), ""))?;
    let help = "check the network (and HTTPS_PROXY); the URL comes from versions.yaml";
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| Error::failed(format!("cannot set up HTTPS: {e}"), ""))?;
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| Error::failed(format!("cannot download {url}: {e}"), help))?;
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
                        format!("the download from {url} broke off after {bytes} bytes: {e}"),
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
    })
}

fn extract(archive: &Path, member: &str, to: &Path) -> Result<()> {
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
        if path == member {
            let mut out = create_private(to).map_err(|e| io(to, e))?;
            std::io::copy(&mut entry, &mut out).map_err(|e| io(to, e))?;
            return Ok(());
        }
    }
    Err(Error::failed(
        format!("the archive has no `{member}`"),
        "check `archivePath` in versions.yaml",
    ))
}

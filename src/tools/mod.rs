//! The tools devenv drives: where each one is (PATH, or devenv's own bin dir), which version it is,
//! and installing the pinned ones.

pub mod install;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
pub use version::Version;

/// devenv's data directory: `DEVENV_DATA_DIR`, else `$XDG_DATA_HOME/devenv`, else `~/.local/share/devenv`.
pub fn data_dir(vars: &BTreeMap<String, String>) -> PathBuf {
    if let Some(d) = vars.get("DEVENV_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = vars.get("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("devenv");
    }
    PathBuf::from(vars.get("HOME").cloned().unwrap_or_else(|| ".".into())).join(".local/share/devenv")
}

/// Where `devenv tools install` puts binaries.
pub fn bin_dir(vars: &BTreeMap<String, String>) -> PathBuf {
    data_dir(vars).join("bin")
}

/// The command that prints a tool's version.
pub fn version_args(tool: &str) -> &'static [&'static str] {
    match tool {
        "kind" => &["version"],
        "helm" => &["version", "--short"],
        "kubectl" => &["version", "--client", "--output", "json"],
        "minikube" => &["version"],
        _ => &["--version"],
    }
}

/// How to install a tool by hand, for `help:` lines.
pub fn install_hint(tool: &str) -> String {
    match tool {
        "docker" => {
            "install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop, and start it".into()
        }
        "podman" => "install podman (https://podman.io/docs/installation)".into(),
        other => format!(
            "`devenv tools install {other}` (pinned version, SHA-256 checked), or install it yourself and put it on PATH"
        ),
    }
}

/// One place a tool was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub version: Option<Version>,
    /// Why the version could not be read: its version command failed, or printed no version.
    pub problem: Option<String>,
    /// Installed by `devenv tools install` into devenv's bin dir.
    pub managed: bool,
}

/// Which copy devenv uses: the PATH one unless it is missing or older than `minimum`.
pub fn choose(found: &[Found], minimum: Option<Version>) -> Option<&Found> {
    let ok = |f: &&Found| f.problem.is_none() && minimum.is_none_or(|m| f.version.is_none_or(|v| v >= m));
    found
        .iter()
        .find(|f| !f.managed && ok(f))
        .or_else(|| found.iter().find(|f| f.managed && ok(f)))
        .or_else(|| found.first())
}

/// The managed copy's path, whether or not it exists.
pub fn managed_path(bin: &Path, tool: &str) -> PathBuf {
    bin.join(tool)
}

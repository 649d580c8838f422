//! `devenv tools list` and `devenv tools install [TOOL…]`.

use super::App;
use crate::error::{Error, Result};
use crate::tools::{self, install};

pub const MANAGED: &[&str] = &["kind", "helm", "kubectl", "minikube"];

pub fn list(app: &App) -> Result<()> {
    let config = app.config()?;
    let state = app.state(&config);
    let (world, _) = app.world(&config, &state)?;
    let mut text = String::from("tool      pinned    minimum   found\n");
    for tool in MANAGED {
        let pin = &config.versions.tools[*tool];
        let found = world.host.tool(tool, &app.cancel);
        let chosen = tools::choose(&found, tools::Version::parse(&pin.minimum)).map(|f| f.path.clone());
        let places: Vec<String> = found
            .iter()
            .map(|f| {
                let v = f.version.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
                let used = if chosen.as_ref() == Some(&f.path) {
                    " (used)"
                } else {
                    ""
                };
                format!(
                    "{v} {}{}{used}",
                    if f.managed { "managed " } else { "" },
                    f.path.display()
                )
            })
            .collect();
        let places = if places.is_empty() {
            "missing".to_string()
        } else {
            places.join("; ")
        };
        text.push_str(&format!("{tool:<9} {:<9} {:<9} {places}\n", pin.version, pin.minimum));
        app.reporter.json(serde_json::json!({"event": "tool", "tool": tool, "pinned": pin.version, "minimum": pin.minimum,
            "found": found.iter().map(|f| serde_json::json!({"path": f.path, "version": f.version.map(|v| v.to_string()), "managed": f.managed, "used": chosen.as_ref() == Some(&f.path)})).collect::<Vec<_>>()}));
    }
    app.reporter.data(&text);
    Ok(())
}

pub fn install_cmd(app: &App, names: &[String]) -> Result<()> {
    let config = app.config()?;
    let wanted: Vec<&str> = if names.is_empty() {
        MANAGED.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    let (os, arch) = install::platform();
    let platform = format!("{os}-{arch}");
    let bin = tools::bin_dir(&app.vars);
    let mut lock = Lock::read(&config.dir)?;
    let mut requests = Vec::new();
    for name in &wanted {
        let Some(pin) = config.versions.tools.get(*name) else {
            let help = match crate::config::yaml::did_you_mean(name, MANAGED) {
                Some(b) => format!("did you mean `{b}`?"),
                None => format!("devenv installs: {}", MANAGED.join(", ")),
            };
            return Err(Error::usage(format!("devenv does not install `{name}`"), help));
        };
        let Some(url) = &pin.url else {
            return Err(Error::usage(
                format!("versions.yaml has no download url for {name}"),
                format!("add tools.{name}.url to versions.yaml"),
            ));
        };
        // versions.yaml's own pin first, then the team's lock, then the project's checksum file.
        let (sum, pinned_in) = match (pin.sha256.get(&platform), lock.get(name, &pin.version, &platform)) {
            (Some(s), _) => (Some(s.clone()), "versions.yaml".to_string()),
            (None, Some(s)) => (Some(s), lock.display()),
            (None, None) => (None, String::new()),
        };
        requests.push(install::Request {
            tool: name.to_string(),
            version: pin.version.clone(),
            url: install::expand(url, &pin.version),
            sha256: sum,
            pinned_in,
            checksum_url: pin.sha256_url.as_ref().map(|u| install::expand(u, &pin.version)),
            archive_path: pin.archive_path.clone(),
            bin_dir: bin.clone(),
        });
    }
    for req in &requests {
        let label = format!("install {} {}", req.tool, req.version);
        app.reporter.step_started(&req.tool, &label);
        let t = std::time::Instant::now();
        let last = std::sync::Mutex::new(0u64);
        let r = install::install(req, &app.cancel, &|bytes, total| {
            let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
            // One line per 8 MiB (and at the end) on a pipe; the terminal shows the same in place.
            if bytes - *l >= 8 << 20 || Some(bytes) == total {
                *l = bytes;
                app.reporter.debug(&format!(
                    "   {} {bytes} / {} bytes",
                    req.tool,
                    total.map(|t| t.to_string()).unwrap_or_else(|| "?".into())
                ));
                app.reporter
                    .json(serde_json::json!({"event": "progress", "tool": req.tool, "bytes": bytes, "total": total}));
            }
        });
        let status = match &r {
            Ok(_) => crate::exec::Status::Ok,
            Err(e) => crate::exec::Status::Failed(e.to_string()),
        };
        app.reporter.step_finished(&crate::exec::StepResult {
            id: req.tool.clone(),
            label,
            status,
            span: Some((std::time::Duration::ZERO, t.elapsed())),
        });
        match r? {
            install::Outcome::Installed {
                bytes,
                path,
                sha256,
                from_checksum_file,
            } => {
                app.reporter.info(&format!(
                    "{} {} installed at {} ({bytes} bytes, SHA-256 checked against {})",
                    req.tool,
                    req.version,
                    path.display(),
                    if from_checksum_file {
                        "the project's checksum file"
                    } else {
                        req.pinned_in.as_str()
                    }
                ));
                if from_checksum_file {
                    lock.set(&req.tool, &req.version, &platform, &sha256);
                    lock.write()?;
                    app.reporter.info(&format!(
                        "kept its sum in {}: commit it, and every later install is held to it",
                        lock.display()
                    ));
                }
            }
            install::Outcome::AlreadyInstalled { path } => app.reporter.info(&format!(
                "{} {} is already installed at {}; nothing downloaded",
                req.tool,
                req.version,
                path.display()
            )),
        }
    }
    Ok(())
}

/// `versions.lock` beside versions.yaml: the SHA-256 of each tool download devenv verified
/// against the project's checksum file, by tool, version and platform. Shared by the team (it is
/// meant to be committed): a later install anywhere is held to the sum, and one that changed is
/// refused.
struct Lock {
    path: std::path::PathBuf,
    sums: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    >,
}

impl Lock {
    const FILE: &'static str = "versions.lock";

    fn read(dir: &std::path::Path) -> Result<Lock> {
        let path = dir.join(Self::FILE);
        let text = crate::files::read_text(&path, 1 << 20, crate::files::Links::Follow).map_err(|why| {
            Error::usage(
                format!("{} {why}", path.display()),
                "delete it; `devenv tools install` writes it again",
            )
        })?;
        let sums = match text {
            None => Default::default(),
            Some(t) => serde_json::from_str(&t).map_err(|e| {
                Error::usage(
                    format!("{}: not a lock file devenv wrote ({e})", path.display()),
                    "restore it from version control, or delete it; `devenv tools install` writes it again",
                )
            })?,
        };
        Ok(Lock { path, sums })
    }

    fn display(&self) -> String {
        Self::FILE.to_string()
    }

    fn get(&self, tool: &str, version: &str, platform: &str) -> Option<String> {
        self.sums.get(tool)?.get(version)?.get(platform).cloned()
    }

    fn set(&mut self, tool: &str, version: &str, platform: &str, sum: &str) {
        self.sums
            .entry(tool.into())
            .or_default()
            .entry(version.into())
            .or_default()
            .insert(platform.into(), sum.into());
    }

    /// Atomically, readable by the team (0644): it holds no secret.
    fn write(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.sums).unwrap_or_default() + "\n";
        let tmp = self.path.with_extension(format!("lock.tmp.{}", std::process::id()));
        let fail = |e: std::io::Error| {
            Error::failed(
                format!("cannot write {}: {e}", self.path.display()),
                "check that the directory is writable",
            )
        };
        std::fs::write(&tmp, text).map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
    }
}

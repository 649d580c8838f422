//! devenv's per-environment state directory (user-only): the kubeconfig, generated values, the
//! lock, logs. `DEVENV_STATE_DIR`, else `$XDG_STATE_HOME/devenv`, else `~/.local/state/devenv`.

use crate::error::{Error, Result};
use crate::exec::Cancel;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn base_dir(vars: &BTreeMap<String, String>) -> PathBuf {
    if let Some(d) = vars.get("DEVENV_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = vars.get("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("devenv");
    }
    let home = vars.get("HOME").cloned().unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/devenv")
}

#[derive(Debug, Clone)]
pub struct State {
    pub dir: PathBuf,
}

impl State {
    pub fn new(base: &Path, env: &str) -> Self {
        State { dir: base.join(env) }
    }

    /// What devenv keeps for the machine rather than for one environment (notices shown once),
    /// beside the environments' directories (an environment name never starts with a dot).
    pub fn machine(base: &Path) -> Self {
        State {
            dir: base.join(".machine"),
        }
    }

    pub fn ensure(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| io_err(&self.dir, e))
    }

    /// The persistent data directory, mounted into every kind node (kept by `down`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The directory on this machine a volume's node path shows.
    pub fn host_dir(&self, d: &crate::world::HostDir) -> PathBuf {
        match d {
            crate::world::HostDir::Data(sub) => self.data_dir().join(sub),
            crate::world::HostDir::User(p) => p.clone(),
        }
    }

    /// Makes the data directory every kind node mounts at `/devenv-data`: the pods' users must be
    /// able to pass through it (0755); devenv's state dir above it (0700) keeps other users of
    /// this machine out.
    pub fn prepare_data_dir(&self) -> Result<PathBuf> {
        let dir = self.data_dir();
        prepare_dir(&dir, Some(DATA_DIR_MODE))?;
        Ok(dir)
    }

    /// Makes a volume's directory before the volume exists. Under the data directory it is made
    /// open to every pod's user: a hostPath volume gets no ownership change, so its directory's
    /// own mode decides, and PostgreSQL runs as uid 999 and must create PGDATA in it (a directory
    /// the kubelet made instead would be root's with mode 0755). A user's own `sharedData.path`
    /// keeps the mode it has.
    pub fn prepare_host_dir(&self, d: &crate::world::HostDir) -> Result<PathBuf> {
        let dir = self.host_dir(d);
        match d {
            crate::world::HostDir::Data(_) => {
                self.prepare_data_dir()?;
                prepare_dir(&dir, Some(VOLUME_DIR_MODE))?;
            }
            crate::world::HostDir::User(_) => prepare_dir(&dir, None)?,
        }
        Ok(dir)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes a user-only file atomically (a new temp file + rename, neither following a link:
    /// the rename replaces a link at `rel` rather than writing through it).
    pub fn write_private(&self, rel: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            if std::fs::symlink_metadata(parent).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(link_err(parent));
            }
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700)).map_err(|e| io_err(parent, e))?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            // Left by a killed run of the same pid, or put there: removed (a link itself, never
            // its target), then made anew.
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(&path, e)
        })?;
        Ok(path)
    }

    /// Takes the environment's lock. Another devenv holding it: wait (saying so) or, with
    /// `no_wait`, fail at once. The lock is released when the guard drops, or when the process dies.
    pub fn lock(&self, no_wait: bool, cancel: &Cancel, mut waiting: impl FnMut(&str)) -> Result<LockGuard> {
        self.ensure()?;
        let path = self.dir.join("lock");
        // Never through a link: truncating it would truncate whatever it points at.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => link_err(&path),
                _ => io_err(&path, e),
            })?;
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let _ = file.rewind();
                    let who = match holder.trim() {
                        "" => "another devenv".to_string(),
                        pid => format!("another devenv (pid {pid})"),
                    };
                    let env = self
                        .dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if no_wait {
                        return Err(Error::prerequisite(
                            format!("environment `{env}` is busy: {who} is working on it"),
                            "wait for it to finish, or run again without --no-wait to wait for it",
                        ));
                    }
                    if !said {
                        waiting(&format!("waiting for {who} to finish with environment `{env}`…"));
                        said = true;
                    }
                    if !cancel.sleep(Duration::from_millis(100)) {
                        return Err(cancel.error());
                    }
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path, e)),
            }
        }
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(LockGuard { file })
    }

    /// The optional components `up --with` switched on, remembered for later commands.
    pub fn remembered_with(&self) -> Vec<String> {
        crate::files::read_text(&self.path("with"), 64 << 10, crate::files::Links::Refuse)
            .ok()
            .flatten()
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    pub fn remember_with(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return match std::fs::remove_file(self.path("with")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&self.path("with"), e)),
                _ => Ok(()),
            };
        }
        self.write_private("with", &format!("{}\n", names.join("\n")))
            .map(|_| ())
    }
}

/// The last failure of a step (a component's install, the cluster, the smoke run), kept in
/// `failures.json` until that step next succeeds, so that `status` can say why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// The command that ran it: `up` or `test`.
    pub command: String,
    pub message: String,
    #[serde(default)]
    pub help: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

impl Failure {
    pub fn now(command: &str, e: &Error) -> Self {
        Failure {
            command: command.into(),
            message: e.to_string(),
            help: e.help().unwrap_or_default().into(),
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        }
    }
}

const FAILURES: &str = "failures.json";
const PORTS: &str = "ports.json";
const CREATING: &str = "creating";

impl State {
    /// The host ports this environment's cluster was created with, by node port, when they are
    /// its own (see `Config::wants_own_ports`); written before the cluster is created.
    pub fn ports(&self) -> Option<BTreeMap<u16, u16>> {
        crate::files::read_text(&self.path(PORTS), 64 << 10, crate::files::Links::Refuse)
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str(&t).ok())
    }

    /// A cluster create by devenv began and has not finished (its marker file is there).
    pub fn creating(&self) -> bool {
        std::fs::symlink_metadata(self.path(CREATING)).is_ok_and(|m| m.is_file())
    }

    pub fn set_creating(&self, on: bool) -> Result<()> {
        if on {
            return self
                .write_private(CREATING, "a cluster create by devenv is under way\n")
                .map(|_| ());
        }
        match std::fs::remove_file(self.path(CREATING)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&self.path(CREATING), e)),
            _ => Ok(()),
        }
    }

    pub fn set_ports(&self, ports: Option<&BTreeMap<u16, u16>>) -> Result<()> {
        match ports {
            Some(p) => self
                .write_private(PORTS, &serde_json::to_string_pretty(p).unwrap_or_default())
                .map(|_| ()),
            None => match std::fs::remove_file(self.path(PORTS)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&self.path(PORTS), e)),
                _ => Ok(()),
            },
        }
    }
}

impl State {
    /// The last failure of each step that has not succeeded since, by step id. A file that does
    /// not parse tells nothing (it is only a report).
    pub fn failures(&self) -> BTreeMap<String, Failure> {
        crate::files::read_text(&self.path(FAILURES), 1 << 20, crate::files::Links::Refuse)
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Records failures (`Some`) and clears the steps that succeeded (`None`), in one write.
    pub fn update_failures(&self, changes: impl IntoIterator<Item = (String, Option<Failure>)>) -> Result<()> {
        let before = self.failures();
        let mut after = before.clone();
        for (id, f) in changes {
            match f {
                Some(f) => after.insert(id, f),
                None => after.remove(&id),
            };
        }
        if after == before {
            return Ok(());
        }
        if after.is_empty() {
            return match std::fs::remove_file(self.path(FAILURES)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&self.path(FAILURES), e)),
                _ => Ok(()),
            };
        }
        let text = serde_json::to_string_pretty(&after).unwrap_or_default();
        self.write_private(FAILURES, &text).map(|_| ())
    }
}

/// Passwords devenv generated for the environment, kept in a user-only file and never printed.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub postgres_password: String,
    /// Grafana's admin password (monitoring); files written before it existed gain one.
    #[serde(default)]
    pub grafana_password: String,
}

/// Steps run concurrently (PostgreSQL's and monitoring's installs): one of them generates.
static CREDENTIALS: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Credentials {
    pub fn secret(&self, s: crate::components::Secret) -> &str {
        match s {
            crate::components::Secret::PostgresPassword => &self.postgres_password,
            crate::components::Secret::GrafanaPassword => &self.grafana_password,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { … }")
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut b = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::failed(format!("cannot read /dev/urandom: {e}"), ""))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl State {
    /// The environment's credentials, generated on first use and stable afterwards. A file that
    /// cannot be read is an error, never a reason to make new passwords: a database kept in the
    /// data directory would refuse them. Nor are they made anew while PostgreSQL's data exists.
    pub fn credentials(&self) -> Result<Credentials> {
        let _one = CREDENTIALS.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path("credentials.json");
        let kept = "devenv never replaces it while it exists: a new password would lock you out of the data kept in the state directory";
        let text = crate::files::read_text(&path, 64 << 10, crate::files::Links::Refuse).map_err(|why| {
            Error::failed(
                format!("{} {why}", path.display()),
                format!("restore it (a user-only file, `chmod 600`) from a backup; {kept}"),
            )
        })?;
        let c = match text {
            Some(text) => {
                let mut c: Credentials = serde_json::from_str(&text).map_err(|e| {
                    Error::failed(
                        format!("{} is not a credentials file devenv wrote ({e})", path.display()),
                        format!("restore it from a backup; {kept}"),
                    )
                })?;
                if !c.grafana_password.is_empty() {
                    return Ok(c);
                }
                c.grafana_password = random_hex(18)?;
                c
            }
            None => {
                let data = self.data_dir().join(crate::components::postgresql::DATA_DIR);
                if std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some()) {
                    return Err(Error::failed(
                        format!(
                            "{} is gone, but PostgreSQL's data in {} is kept: a new password would not open it",
                            path.display(),
                            data.display()
                        ),
                        "restore credentials.json from a backup, or start over without the data: `devenv down --purge` (deletes it)",
                    ));
                }
                Credentials {
                    postgres_password: random_hex(18)?,
                    grafana_password: random_hex(18)?,
                }
            }
        };
        self.write_private(
            "credentials.json",
            &serde_json::to_string_pretty(&c).unwrap_or_default(),
        )?;
        Ok(c)
    }
}

pub struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// The data directory: every node mounts it, and pods' users pass through it.
pub const DATA_DIR_MODE: u32 = 0o755;
/// A volume's directory under it: every pod's user may write it.
pub const VOLUME_DIR_MODE: u32 = 0o777;

/// Creates `dir` and gives it `mode`. None: a directory of the user's own, which keeps the mode
/// it has, and is made, when missing, as `mkdir -p` would (0755), never open to everyone.
fn prepare_dir(dir: &Path, mode: Option<u32>) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let users_own = mode.is_none();
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o755);
    builder.create(dir).map_err(|e| {
        Error::failed(
            format!(
                "cannot create the directory {} to mount into the nodes: {e}",
                dir.display()
            ),
            "check its parent's permissions (devenv's state directory is DEVENV_STATE_DIR)",
        )
    })?;
    if users_own {
        return Ok(());
    }
    let mode = mode.unwrap_or(VOLUME_DIR_MODE);
    let meta = std::fs::metadata(dir).map_err(|e| io_err(dir, e))?;
    if meta.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(|e| {
        Error::failed(
            format!(
                "{} belongs to uid {} with mode {:o}, which the containers' users (PostgreSQL runs as uid {}) cannot write, and devenv cannot change it: {e}",
                dir.display(),
                meta.uid(),
                meta.permissions().mode() & 0o7777,
                crate::components::postgresql::UID,
            ),
            format!(
                "make it writable, keeping its files: `sudo chmod {mode:o} {}` (a kubelet makes a missing hostPath directory as root with mode 755)",
                dir.display()
            ),
        )
    })
}

fn link_err(path: &Path) -> Error {
    Error::failed(
        format!(
            "{} is a symbolic link; devenv does not follow links in its state directory",
            path.display()
        ),
        "remove the link; devenv makes the file again",
    )
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::failed(
        format!("cannot write {}: {e}", path.display()),
        "check the permissions of devenv's state directory (DEVENV_STATE_DIR)",
    )
}

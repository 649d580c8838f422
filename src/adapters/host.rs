//! The real machine: tools on PATH and in devenv's bin dir, ports, the Docker engine through its
//! API (bollard), /proc files, free disk.

use crate::exec::Cancel;
use crate::process::{Cmd, Runner};
use crate::tools::{self, Found, Version};
use crate::world::{EngineFacts, EngineProblem, Host};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct RealHost {
    pub runner: Arc<dyn Runner>,
    /// The PATH to search (the process's, or a test's).
    pub path: String,
    pub cwd: PathBuf,
    pub bin_dir: PathBuf,
    /// `tool-versions.json`: versions by path, size and mtime, so unchanged tools are not re-run.
    pub cache_file: PathBuf,
    pub docker_host: Option<String>,
    cache: Mutex<Option<BTreeMap<String, String>>>,
    /// What `tool` found, per tool, for the life of the run (the world and `up` both ask).
    found: Mutex<BTreeMap<String, Vec<Found>>>,
}

impl RealHost {
    pub fn new(runner: Arc<dyn Runner>, vars: &BTreeMap<String, String>, cwd: &Path) -> Self {
        RealHost {
            runner,
            path: vars.get("PATH").cloned().unwrap_or_default(),
            cwd: cwd.to_path_buf(),
            bin_dir: tools::bin_dir(vars),
            cache_file: tools::data_dir(vars).join("tool-versions.json"),
            docker_host: vars.get("DOCKER_HOST").cloned().filter(|h| !h.is_empty()),
            cache: Mutex::new(None),
            found: Mutex::new(BTreeMap::new()),
        }
    }

    /// The tool's version, or why it could not be read (a crash, output with no version in it).
    fn version_of(&self, tool: &str, path: &Path, cancel: &Cancel) -> std::result::Result<Version, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let key = format!(
            "{}|{}|{}",
            path.display(),
            meta.len(),
            meta.mtime_nsec() + meta.mtime() * 1_000_000_000
        );
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let map = cache.get_or_insert_with(|| {
            std::fs::read_to_string(&self.cache_file)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default()
        });
        if let Some(v) = map.get(&key).and_then(|v| Version::parse(v)) {
            return Ok(v);
        }
        let cmd = Cmd::new(path.display().to_string())
            .args(tools::version_args(tool).iter().copied())
            .timeout(Duration::from_secs(15));
        let out = self.runner.run(&cmd, cancel).map_err(|e| e.to_string())?;
        let v = tools::version::find(&format!("{}\n{}", out.stdout, out.stderr)).ok_or_else(|| {
            format!(
                "`{}` printed no version:\n{}",
                cmd.display(),
                crate::process::tail(&format!("{}\n{}", out.stdout, out.stderr), 4)
            )
        })?;
        map.insert(key, v.to_string());
        if let Some(dir) = self.cache_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&self.cache_file, serde_json::to_string(map).unwrap_or_default());
        Ok(v)
    }
}

/// Who listens on a TCP port, from /proc/net/tcp{,6} and the owners of socket inodes.
fn holder_of(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                inodes.extend(f.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.to_string_lossy() == *i)
            {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("{} (pid {pid})", comm.trim()));
            }
        }
    }
    None
}

fn classify(e: &bollard::errors::Error, host: &str) -> EngineProblem {
    let text = format!("{e}");
    let lower = format!("{e:?}").to_lowercase();
    if lower.contains("socketnotfound") || lower.contains("no such file") {
        EngineProblem::SocketMissing(format!("{host}: no Docker socket there"))
    } else if lower.contains("permission denied") {
        EngineProblem::PermissionDenied(format!("{host}: {text}"))
    } else if lower.contains("connection refused") || lower.contains("timed out") || lower.contains("timeout") {
        EngineProblem::DaemonDown(format!("{host}: {text}"))
    } else {
        EngineProblem::Other(format!("{host}: {text}"))
    }
}

impl Host for RealHost {
    fn tool(&self, tool: &str, cancel: &Cancel) -> Vec<Found> {
        if let Some(f) = self.found.lock().unwrap_or_else(|e| e.into_inner()).get(tool) {
            return f.clone();
        }
        let mut found = Vec::new();
        let found_at = |p: PathBuf, managed: bool| {
            let v = self.version_of(tool, &p, cancel);
            Found {
                version: v.as_ref().ok().copied(),
                problem: v.err(),
                path: p,
                managed,
            }
        };
        if let Ok(p) = which::which_in(tool, Some(&self.path), &self.cwd) {
            found.push(found_at(p, false));
        }
        let managed = tools::managed_path(&self.bin_dir, tool);
        if managed.is_file() && !found.iter().any(|f| f.path == managed) {
            found.push(found_at(managed, true));
        }
        self.found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tool.to_string(), found.clone());
        found
    }

    fn own_addresses(&self) -> Vec<std::net::IpAddr> {
        own_addresses()
    }

    fn port_holder(&self, address: &str, port: u16) -> Option<String> {
        match std::net::TcpListener::bind((address, port)) {
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                Some(holder_of(port).unwrap_or_else(|| "another program".into()))
            }
            // Below 1024 an unprivileged user cannot bind, but Docker's daemon can: not a finding.
            Err(_) => None,
        }
    }

    fn free_ports(&self, address: &str, n: usize, avoid: &[u16]) -> Vec<u16> {
        // Every listener is held until all are chosen, so that the ports differ.
        let mut held = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..(n + avoid.len() + 16) {
            if ports.len() == n {
                break;
            }
            let Ok(l) = std::net::TcpListener::bind((address, 0)) else {
                break;
            };
            if let Ok(a) = l.local_addr()
                && !avoid.contains(&a.port())
            {
                ports.push(a.port());
            }
            held.push(l);
        }
        ports
    }

    fn engine(&self, _cancel: &Cancel) -> std::result::Result<EngineFacts, EngineProblem> {
        let host = self
            .docker_host
            .clone()
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EngineProblem::Other(e.to_string()))?;
        let docker = bollard::Docker::connect_with_defaults().map_err(|e| classify(&e, &host))?;
        rt.block_on(async {
            let t = Duration::from_secs(5);
            let timed = |e| EngineProblem::DaemonDown(format!("{host}: no answer within 5s ({e})"));
            tokio::time::timeout(t, docker.ping())
                .await
                .map_err(timed)?
                .map_err(|e| classify(&e, &host))?;
            let version = tokio::time::timeout(t, docker.version())
                .await
                .map_err(timed)?
                .map_err(|e| classify(&e, &host))?;
            let info = tokio::time::timeout(t, docker.info())
                .await
                .map_err(timed)?
                .map_err(|e| classify(&e, &host))?;
            let status = info.driver_status.clone().unwrap_or_default();
            let security = info.security_options.clone().unwrap_or_default();
            Ok(EngineFacts {
                server_version: info.server_version.clone().unwrap_or_default(),
                api_version: version.api_version.unwrap_or_default(),
                os: info.operating_system.clone().unwrap_or_default(),
                arch: info.architecture.clone().unwrap_or_default(),
                cgroup_version: info.cgroup_version.map(|v| v.to_string()).unwrap_or_default(),
                cgroup_driver: info.cgroup_driver.map(|v| v.to_string()).unwrap_or_default(),
                rootless: security.iter().any(|s| s.contains("name=rootless")),
                containerd_store: status.iter().flatten().any(|s| s.contains("io.containerd.snapshotter")),
                cpus: info.ncpu.unwrap_or_default(),
                memory_bytes: info.mem_total.unwrap_or_default(),
                root_dir: info.docker_root_dir.clone().unwrap_or_default(),
                remote: self.docker_host.clone().filter(|h| !h.starts_with("unix://")),
            })
        })
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn free_bytes(&self, path: &str) -> Option<u64> {
        let c = std::ffi::CString::new(path).ok()?;
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: statvfs writes into `s`, a properly sized struct we own.
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return None;
        }
        Some(s.f_bavail as u64 * s.f_frsize as u64)
    }
}

/// Runs commands with each tool name replaced by the copy devenv chose (PATH or managed).
pub struct ResolvingRunner {
    pub inner: Arc<dyn Runner>,
    pub programs: BTreeMap<String, PathBuf>,
}

impl Runner for ResolvingRunner {
    fn run(&self, cmd: &Cmd, cancel: &Cancel) -> Result<crate::process::Output, crate::process::RunError> {
        match self.programs.get(&cmd.program) {
            Some(p) => {
                let mut c = cmd.clone();
                c.program = p.display().to_string();
                self.inner.run(&c, cancel)
            }
            None => self.inner.run(cmd, cancel),
        }
    }
}

/// Every interface's addresses (getifaddrs).
pub fn own_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below; every node is read only
    // while the list is alive, and each sockaddr is read as the family it says it is.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut cur = list;
        while !cur.is_null() {
            let a = (*cur).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push(std::net::IpAddr::V6(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

//! The container engine kind's nodes run on: Docker, through its CLI (and its API where that
//! reaches the same engine). Podman is not driven here: `doctor` refuses kind on podman.

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::process::{Cmd, RunError, Runner};
use crate::world::{ContainerEngine, NodeState, RunSpec};
use std::sync::Arc;
use std::time::Duration;

pub struct DockerCli {
    pub runner: Arc<dyn Runner>,
    /// The Docker CLI (`docker`).
    pub program: String,
    /// List containers through the engine's API instead of `docker ps` (see [`api_reaches_cli_engine`]).
    pub api: bool,
}

/// Whether the engine's API as devenv reaches it (DOCKER_HOST, else the default socket) is the
/// engine the `docker` CLI talks to, which kind uses: not when a docker context other than the
/// default one is selected (DOCKER_CONTEXT, or `currentContext` in the CLI's config.json), nor
/// when DOCKER_HOST needs what only the CLI does (ssh://, TLS).
pub fn api_reaches_cli_engine(program: &str, vars: &std::collections::BTreeMap<String, String>) -> bool {
    let var = |k: &str| vars.get(k).filter(|v| !v.is_empty());
    if std::path::Path::new(program).file_name().and_then(|n| n.to_str()) != Some("docker") {
        return false;
    }
    if var("DOCKER_CONTEXT").is_some_and(|c| c != "default") {
        return false;
    }
    if let Some(host) = var("DOCKER_HOST") {
        return (host.starts_with("unix://") || host.starts_with("tcp://")) && var("DOCKER_TLS_VERIFY").is_none();
    }
    let config = match (var("DOCKER_CONFIG"), var("HOME")) {
        (Some(d), _) => std::path::Path::new(d).join("config.json"),
        (None, Some(h)) => std::path::Path::new(h).join(".docker/config.json"),
        (None, None) => return false,
    };
    match std::fs::read_to_string(config) {
        Err(_) => true,
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text).ok().is_some_and(|v| {
            v["currentContext"]
                .as_str()
                .is_none_or(|c| c.is_empty() || c == "default")
        }),
    }
}

/// The `--format` given to `ps`: name, kind role label, state.
pub const NODE_FORMAT: &str = "{{.Names}}\t{{.Label \"io.x-k8s.kind.role\"}}\t{{.State}}";

/// The node containers `docker ps --format NODE_FORMAT` printed. Anything else (an error page,
/// a proxy's answer, output of another format) is an error naming the line, never a node name
/// devenv would then act on.
pub fn parse_nodes(stdout: &str) -> Result<Vec<NodeState>> {
    const STATES: &[&str] = &[
        "created",
        "restarting",
        "running",
        "removing",
        "paused",
        "exited",
        "dead",
    ];
    let mut nodes = Vec::new();
    for l in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split('\t').map(str::trim).collect();
        let name_ok = |n: &str| {
            n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        };
        match f.as_slice() {
            [name, role, state] if name_ok(name) && STATES.contains(state) => nodes.push(NodeState {
                name: name.to_string(),
                role: role.to_string(),
                running: *state == "running",
            }),
            _ => {
                return Err(Error::failed(
                    format!(
                        "`docker ps` printed a line that is not a container: {}",
                        crate::process::tail(l, 1).trim()
                    ),
                    "check that `docker` on PATH is the Docker CLI: `docker ps --all` should list containers",
                ));
            }
        }
    }
    Ok(nodes)
}

/// The `--format` given to `inspect` for each container's addresses on its networks.
pub const INSPECT_ADDRESSES: &str = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}} {{end}}";

/// Every address `docker inspect --format INSPECT_ADDRESSES` printed (anything else is skipped).
pub fn parse_addresses(stdout: &str) -> Vec<std::net::IpAddr> {
    stdout.split_whitespace().filter_map(|a| a.parse().ok()).collect()
}

/// The `--format` given to `inspect` for the host ports a container publishes: its name, the
/// value of `label`, and its HostConfig's port bindings (kept while it is stopped, unlike what
/// `docker ps` shows).
pub fn inspect_published(label: &str) -> String {
    format!("{{{{.Name}}}}\t{{{{index .Config.Labels \"{label}\"}}}}\t{{{{json .HostConfig.PortBindings}}}}")
}

/// What `docker inspect --format inspect_published(…)` printed: one binding per host port.
/// `{"30080/tcp":[{"HostIp":"127.0.0.1","HostPort":"80"}]}`; a binding without a host port (the
/// engine picks one when the container starts) is left out.
pub fn parse_published(stdout: &str) -> Result<Vec<crate::world::Published>> {
    let mut out = Vec::new();
    for l in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = l.splitn(3, '\t');
        let (Some(name), Some(owner), Some(json)) = (f.next(), f.next(), f.next()) else {
            return Err(Error::failed(
                format!(
                    "`docker inspect` printed a line devenv cannot read: {}",
                    crate::process::tail(l, 1).trim()
                ),
                "check that `docker` on PATH is the Docker CLI",
            ));
        };
        let bindings: std::collections::BTreeMap<String, Option<Vec<serde_json::Value>>> =
            serde_json::from_str(json.trim()).unwrap_or_default();
        for (port, list) in bindings {
            let container_port = port.split('/').next().and_then(|p| p.parse().ok()).unwrap_or(0);
            for b in list.into_iter().flatten() {
                let Some(host_port) = b["HostPort"]
                    .as_str()
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p != 0)
                else {
                    continue;
                };
                out.push(crate::world::Published {
                    container: name.trim_start_matches('/').to_string(),
                    owner: owner.to_string(),
                    host_ip: b["HostIp"]
                        .as_str()
                        .filter(|i| !i.is_empty())
                        .unwrap_or("0.0.0.0")
                        .to_string(),
                    host_port,
                    container_port,
                });
            }
        }
    }
    Ok(out)
}

/// Recognises the engine being unreachable in a command's stderr, with the fix.
pub fn engine_unreachable(stderr: &str) -> Option<(String, String)> {
    let line = stderr.lines().find(|l| !l.trim().is_empty())?.trim().to_string();
    if line.contains("Cannot connect to the Docker daemon") {
        return Some((
            format!("the Docker engine is not running ({line})"),
            "start Docker (Docker Desktop, or `sudo systemctl start docker`), then run devenv again".into(),
        ));
    }
    if line.contains("permission denied") && line.contains("docker") {
        return Some((
            format!("this user may not use Docker ({line})"),
            "add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in again)".into(),
        ));
    }
    None
}

impl DockerCli {
    /// `docker run --rm --network none --user U --mount type=bind,… --entrypoint E IMAGE ARGS…`:
    /// every value its own argument, the image's arguments after the image.
    pub fn run_cmd(&self, spec: &RunSpec) -> Result<Cmd> {
        let mut cmd = Cmd::new(&self.program).args(["run", "--rm", "--network", "none", "--user", &spec.user]);
        for (host, inside) in &spec.mounts {
            let host = host.display().to_string();
            // `--mount` is comma-separated: a path with a comma would be read as another option.
            if host.contains(',') || inside.contains(',') {
                return Err(Error::failed(
                    format!("cannot mount {host}: its path contains a comma"),
                    "move devenv's state directory (DEVENV_STATE_DIR) to a path without one",
                ));
            }
            cmd = cmd.args([
                "--mount".to_string(),
                format!("type=bind,source={host},target={inside}"),
            ]);
        }
        Ok(cmd
            .args(["--entrypoint", &spec.entrypoint, &spec.image])
            .args(spec.args.iter().cloned())
            .timeout(Duration::from_secs(300)))
    }

    pub fn ps_cmd(&self, label: &str, value: &str) -> Cmd {
        Cmd::new(&self.program)
            .args([
                "ps",
                "--all",
                "--filter",
                &format!("label={label}={value}"),
                "--format",
                NODE_FORMAT,
            ])
            .timeout(Duration::from_secs(30))
    }

    /// Runs a command; an unreachable engine is a missing prerequisite (exit 3), not a failure.
    fn cli(&self, cmd: Cmd, cancel: &Cancel, help: &str) -> Result<String> {
        match self.runner.run(&cmd, cancel) {
            Ok(o) => Ok(o.stdout),
            Err(RunError::Failed { stderr, .. }) if engine_unreachable(&stderr).is_some() => {
                let (msg, help) = engine_unreachable(&stderr).unwrap_or_default();
                Err(Error::prerequisite(msg, help))
            }
            Err(e) => Err(e.into_error(cancel, help)),
        }
    }
}

impl ContainerEngine for DockerCli {
    fn containers_labelled(&self, label: &str, value: &str, cancel: &Cancel) -> Result<Vec<NodeState>> {
        if self.api {
            match super::image_api::containers_labelled(label, value, cancel) {
                Ok(nodes) => return Ok(nodes),
                Err(crate::error::Error::Interrupted(s)) => return Err(crate::error::Error::Interrupted(s)),
                // The CLI says what is wrong in its own words (and may reach what the API cannot).
                Err(_) => {}
            }
        }
        parse_nodes(&self.cli(
            self.ps_cmd(label, value),
            cancel,
            "`docker info` should answer; `devenv doctor` checks",
        )?)
    }

    fn remove(&self, names: &[String], cancel: &Cancel) -> Result<()> {
        let cmd = Cmd::new(&self.program)
            .args(["rm", "--force", "--volumes"])
            .args(names.iter().cloned())
            .timeout(Duration::from_secs(120));
        self.cli(cmd, cancel, "remove them by hand with `docker rm -f NAME`")
            .map(|_| ())
    }

    fn run(&self, spec: &RunSpec, cancel: &Cancel) -> Result<()> {
        let cmd = self.run_cmd(spec)?;
        self.cli(
            cmd,
            cancel,
            &format!(
                "`docker run --rm {}` should work on this machine; `devenv doctor` checks the engine",
                spec.image
            ),
        )
        .map(|_| ())
    }

    fn addresses(&self, cancel: &Cancel) -> Result<Vec<std::net::IpAddr>> {
        let ids = self.cli(
            Cmd::new(&self.program)
                .args(["ps", "--quiet", "--no-trunc"])
                .timeout(Duration::from_secs(30)),
            cancel,
            "`docker ps` should answer; `devenv doctor` checks",
        )?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let out = self.cli(
            Cmd::new(&self.program)
                .args(["inspect", "--format", INSPECT_ADDRESSES])
                .args(ids.iter().copied())
                .timeout(Duration::from_secs(30)),
            cancel,
            "`docker inspect` should answer; `devenv doctor` checks",
        )?;
        Ok(parse_addresses(&out))
    }

    fn stop(&self, names: &[String], cancel: &Cancel) -> Result<()> {
        let cmd = Cmd::new(&self.program)
            .arg("stop")
            .args(names.iter().cloned())
            .timeout(Duration::from_secs(180));
        self.cli(
            cmd,
            cancel,
            "`docker stop NAME` should work on this machine; `devenv doctor` checks the engine",
        )
        .map(|_| ())
    }

    fn published(&self, label: &str, cancel: &Cancel) -> Result<Vec<crate::world::Published>> {
        let ids = self.cli(
            Cmd::new(&self.program)
                .args([
                    "ps",
                    "--all",
                    "--quiet",
                    "--no-trunc",
                    "--filter",
                    &format!("label={label}"),
                ])
                .timeout(Duration::from_secs(30)),
            cancel,
            "`docker ps` should answer; `devenv doctor` checks",
        )?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let out = self.cli(
            Cmd::new(&self.program)
                .args(["inspect", "--format", &inspect_published(label)])
                .args(ids.iter().copied())
                .timeout(Duration::from_secs(30)),
            cancel,
            "`docker inspect` should answer; `devenv doctor` checks",
        )?;
        parse_published(&out)
    }

    fn start(&self, names: &[String], cancel: &Cancel) -> Result<()> {
        let cmd = Cmd::new(&self.program)
            .arg("start")
            .args(names.iter().cloned())
            .timeout(Duration::from_secs(120));
        self.cli(
            cmd,
            cancel,
            "if the nodes do not come back, `devenv up --recreate` rebuilds the cluster (its data is lost)",
        )
        .map(|_| ())
    }
}

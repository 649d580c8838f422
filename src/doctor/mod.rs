//! Every prerequisite and host check, each a finding with a one-line fix. Pure functions over the
//! `Host` (and the engine, for node containers), so the real machine and the simulated one give
//! the same findings for the same facts.

use crate::config::{Config, Driver};
use crate::exec::Cancel;
use crate::tools::{self, Version};
use crate::world::{EngineProblem, Host, World};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Blocking,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub level: Level,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// A tool's version, as devenv read it (for checks made later against the live cluster).
    #[serde(skip)]
    pub version: Option<Version>,
}

fn ok(check: &str, message: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        level: Level::Ok,
        message: message.into(),
        help: None,
        version: None,
    }
}
fn warn(check: &str, message: impl Into<String>, help: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        level: Level::Warning,
        message: message.into(),
        help: Some(help.into()),
        version: None,
    }
}
fn block(check: &str, message: impl Into<String>, help: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        level: Level::Blocking,
        message: message.into(),
        help: Some(help.into()),
        version: None,
    }
}

/// The tools a driver needs.
pub fn required_tools(driver: Driver) -> &'static [&'static str] {
    match driver {
        Driver::Kind => &["docker", "kind", "helm", "kubectl"],
        Driver::Minikube => &["minikube", "helm", "kubectl"],
        Driver::Existing => &["helm", "kubectl"],
    }
}

/// kubectl is supported within one minor version of the API server it talks to; further away,
/// the commands a user runs against the environment may fail or misbehave.
pub fn kubectl_skew(client: Version, server: &str) -> Option<Finding> {
    let server_v = crate::tools::version::find(server)?;
    let apart = client.minor.abs_diff(server_v.minor);
    if client.major != server_v.major || apart <= 1 {
        return None;
    }
    Some(warn(
        "kubectl skew",
        format!(
            "kubectl {client} is {apart} minor versions away from the cluster's Kubernetes {server} (kubectl supports one either way): kubectl commands you run against it may fail or misbehave"
        ),
        format!(
            "install a kubectl within one minor version of {}.{} (`devenv tools install kubectl` installs the pinned one)",
            server_v.major, server_v.minor
        ),
    ))
}

/// The Kubernetes version the configuration pins for a cluster devenv creates (kind's node
/// image tag, minikube's `kubernetes`); None for an existing cluster, known only by asking it.
pub fn pinned_server(config: &Config) -> Option<String> {
    match config.project.driver {
        Driver::Kind => {
            let image = &config.versions.kind_node_image;
            let tag = image.split('@').next()?.rsplit_once(':')?.1;
            Some(tag.to_string())
        }
        Driver::Minikube => Some(config.versions.minikube_kubernetes.clone()),
        Driver::Existing => None,
    }
}

/// Finds each required tool and checks its version; returns the findings and the copy to use.
pub fn tools(host: &dyn Host, config: &Config, cancel: &Cancel) -> (Vec<Finding>, BTreeMap<String, PathBuf>) {
    let mut findings = Vec::new();
    let mut chosen = BTreeMap::new();
    for &tool in required_tools(config.project.driver) {
        let pin = config.versions.tools.get(tool);
        let minimum = pin.and_then(|p| Version::parse(&p.minimum));
        let found = host.tool(tool, cancel);
        let check = format!("tool {tool}");
        match tools::choose(&found, minimum) {
            None => findings.push(block(
                &check,
                format!("{tool} is not installed (not on PATH, not in devenv's bin dir)"),
                tools::install_hint(tool),
            )),
            Some(f) => {
                let v = f
                    .version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "version unknown".into());
                let place = if f.managed { "devenv's own copy" } else { "on PATH" };
                // A tool whose own version command fails will not do better with real work.
                if let Some(why) = &f.problem {
                    findings.push(block(
                        &check,
                        format!("{tool} at {} does not work: {why}", f.path.display()),
                        format!("reinstall it: {}", tools::install_hint(tool)),
                    ));
                    chosen.insert(tool.to_string(), f.path.clone());
                    continue;
                }
                match (f.version, minimum) {
                    (Some(have), Some(min)) if have < min => findings.push(block(
                        &check,
                        format!("{tool} {have} at {} is older than the minimum {min}", f.path.display()),
                        format!(
                            "{} (installs {})",
                            tools::install_hint(tool),
                            pin.map(|p| p.version.as_str()).unwrap_or("the pinned version")
                        ),
                    )),
                    _ => {
                        let other = found.iter().find(|o| o.path != f.path && !o.managed);
                        let note = match other {
                            Some(o) => format!(
                                " (the one at {} is older than {})",
                                o.path.display(),
                                minimum.map(|m| m.to_string()).unwrap_or_default()
                            ),
                            None => String::new(),
                        };
                        findings.push(Finding {
                            version: f.version,
                            ..ok(&check, format!("{tool} {v}, {place}: {}{note}", f.path.display()))
                        });
                        if tool == "kubectl"
                            && let (Some(have), Some(server)) = (f.version, pinned_server(config))
                        {
                            findings.extend(kubectl_skew(have, &server));
                        }
                    }
                }
                chosen.insert(tool.to_string(), f.path.clone());
            }
        }
    }
    (findings, chosen)
}

/// The container engine: reachable, and fit for kind.
pub fn engine(host: &dyn Host, config: &Config, cancel: &Cancel) -> Vec<Finding> {
    if config.project.driver == Driver::Existing {
        return vec![];
    }
    let needed = config.project.driver == Driver::Kind;
    let level_down = |m: String, h: &str| {
        if needed {
            block("engine", m, h)
        } else {
            warn("engine", m, h)
        }
    };
    let facts = match host.engine(cancel) {
        Ok(f) => f,
        Err(EngineProblem::SocketMissing(m)) => {
            return vec![level_down(
                format!("Docker is not running or not installed ({m})"),
                "start Docker (Docker Desktop, or `sudo systemctl start docker`)",
            )];
        }
        Err(EngineProblem::PermissionDenied(m)) => {
            return vec![level_down(
                format!("this user may not use Docker ({m})"),
                "`sudo usermod -aG docker $USER`, then log in again",
            )];
        }
        Err(EngineProblem::DaemonDown(m)) => {
            return vec![level_down(
                format!("the Docker engine does not answer ({m})"),
                "start Docker (Docker Desktop, or `sudo systemctl start docker`)",
            )];
        }
        Err(EngineProblem::Other(m)) => {
            return vec![level_down(
                format!("cannot talk to the Docker engine ({m})"),
                "`docker info` shows what is wrong",
            )];
        }
    };
    let mut f = vec![ok(
        "engine",
        format!(
            "Docker {} (API {}) on {} {}, cgroup v{} ({}), {} CPUs, {:.1} GiB",
            facts.server_version,
            facts.api_version,
            facts.os,
            facts.arch,
            facts.cgroup_version,
            facts.cgroup_driver,
            facts.cpus,
            facts.memory_bytes as f64 / (1u64 << 30) as f64
        ),
    )];
    if let Some(h) = &facts.remote {
        f.push(warn(
            "engine remote",
            format!("DOCKER_HOST is {h}: the cluster's ports will be published on that machine, not on 127.0.0.1 here"),
            "use a local engine, or reach the ports through that host",
        ));
    }
    if facts.rootless {
        f.push(warn("engine rootless", "Docker runs rootless: kind needs cgroup v2 with cpu, memory and pids delegated, and host ports below 1024 cannot be published", "see https://kind.sigs.k8s.io/docs/user/rootless/ and map the ingress to ports above 1024 in kind-config.yaml"));
    }
    if facts.containerd_store {
        f.push(warn("engine image store", "Docker uses the containerd image store: `kind load docker-image` fails on multi-platform images (\"content digest not found\")", "devenv saves only the node's platform when loading images; with plain kind use `docker save --platform` + `kind load image-archive`"));
    }
    if facts.cgroup_version == "1" {
        f.push(warn(
            "engine cgroup",
            "the host uses cgroup v1; recent Kubernetes versions are dropping support for it",
            "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) if the cluster fails to start",
        ));
    }
    if facts.cpus > 0 && facts.cpus < 2 {
        f.push(warn(
            "engine cpus",
            format!(
                "Docker may use {} CPU; a cluster with PostgreSQL, Redis and an ingress wants 2 or more",
                facts.cpus
            ),
            "give Docker more CPUs (Docker Desktop: Settings > Resources)",
        ));
    }
    if facts.memory_bytes > 0 && facts.memory_bytes < (4i64 << 30) {
        f.push(warn(
            "engine memory",
            format!(
                "Docker may use {:.1} GiB of memory; 4 GiB or more is advised",
                facts.memory_bytes as f64 / (1u64 << 30) as f64
            ),
            "give Docker more memory (Docker Desktop: Settings > Resources)",
        ));
    }
    if facts.remote.is_none() && !facts.root_dir.is_empty() {
        f.extend(disk(host, &facts.root_dir));
    }
    f
}

fn disk(host: &dyn Host, dir: &str) -> Vec<Finding> {
    let Some(free) = host.free_bytes(dir) else {
        return vec![];
    };
    let gib = free as f64 / (1u64 << 30) as f64;
    if gib < 5.0 {
        vec![block(
            "disk",
            format!("only {gib:.1} GiB free under {dir}; nodes get evicted under disk pressure"),
            "free space (`docker system prune` removes unused images and containers)",
        )]
    } else if gib < 20.0 {
        vec![warn(
            "disk",
            format!("{gib:.1} GiB free under {dir}; about 20 GiB is advised"),
            "`docker system prune` removes unused images and containers",
        )]
    } else {
        vec![ok("disk", format!("{gib:.0} GiB free under {dir}"))]
    }
}

/// Every host port kind-config.yaml maps must be free before the cluster is created.
/// Each host port kind-config.yaml maps: free, or whose it is. A port a kind node publishes is
/// held by docker-proxy on the host; the engine says which cluster's node it is, so that this
/// environment's own ports (it runs, or is about to be recreated) never block, and another
/// environment's are named. `published`: what the engine's kind nodes publish; `own`: this
/// environment's cluster.
pub fn ports(host: &dyn Host, config: &Config, published: &[crate::world::Published], own: &str) -> Vec<Finding> {
    if config.project.driver != Driver::Kind {
        return vec![];
    }
    let exposed = config.exposed().into_iter().map(|(what, m)| {
        warn(
            &format!("port {}", m.host_port),
            Config::exposure_warning(what, m),
            format!("set `listenAddress: 127.0.0.1` on line {} of kind-config.yaml", m.line),
        )
    });
    let line = |m: &crate::config::kind::HostMapping| {
        if m.chosen {
            "this environment's own, chosen when its cluster was created".to_string()
        } else {
            format!("kind-config.yaml line {}", m.line)
        }
    };
    exposed
        .chain(config.kind.mappings.iter().map(|m| {
            let check = format!("port {}", m.host_port);
            let node = published.iter().find(|p| {
                p.host_port == m.host_port
                    && (p.host_ip == m.listen_address || p.host_ip == "0.0.0.0" || m.listen_address == "0.0.0.0")
            });
            match (node, host.port_holder(&m.listen_address, m.host_port)) {
                (Some(p), _) if p.owner == own => ok(
                    &check,
                    format!(
                        "{}:{} is this environment's own (published by its node {})",
                        m.listen_address, m.host_port, p.container
                    ),
                ),
                (Some(p), _) => block(
                    &check,
                    format!(
                        "host port {} ({}:{}, {}) is held by kind cluster `{}` (its node {}): another devenv environment, or a cluster of yours",
                        m.host_port,
                        m.listen_address,
                        m.host_port,
                        line(m),
                        p.owner,
                        p.container
                    ),
                    format!(
                        "stop or remove that environment (`devenv -n {} stop` or `down`), or run this one under another name (`-n NAME`), which gets ports of its own",
                        p.owner
                    ),
                ),
                (None, None) => ok(&check, format!("{}:{} is free", m.listen_address, m.host_port)),
                (None, Some(who)) => block(
                    &check,
                    format!(
                        "host port {} ({}:{}, {}) is taken by {who}",
                        m.host_port,
                        m.listen_address,
                        m.host_port,
                        line(m)
                    ),
                    format!(
                        "stop {who}, or change that hostPort in kind-config.yaml to a free port (an environment under another name, `-n NAME`, gets ports of its own)"
                    ),
                ),
            }
        }))
        .collect()
}

/// Kernel and environment limits that break clusters in confusing ways.
pub fn limits(host: &dyn Host, vars: &BTreeMap<String, String>) -> Vec<Finding> {
    let mut f = Vec::new();
    let read_num = |p: &str| host.read(p).and_then(|t| t.trim().parse::<u64>().ok());
    match (read_num("/proc/sys/fs/inotify/max_user_watches"), read_num("/proc/sys/fs/inotify/max_user_instances")) {
        (Some(w), Some(i)) if w < 524_288 || i < 512 => f.push(warn(
            "inotify",
            format!("inotify limits are low (max_user_watches {w}, max_user_instances {i}): pods fail with \"too many open files\""),
            "sudo sysctl fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512 (and add them to /etc/sysctl.conf)",
        )),
        (Some(w), Some(i)) => f.push(ok("inotify", format!("max_user_watches {w}, max_user_instances {i}"))),
        _ => {}
    }
    if host
        .read("/proc/version")
        .is_some_and(|v| v.to_lowercase().contains("microsoft"))
    {
        f.push(warn(
            "wsl2",
            "running under WSL2: kind needs systemd and cgroup v2 there, and minikube often finds no driver",
            "see https://kind.sigs.k8s.io/docs/user/using-wsl2/",
        ));
    }
    let proxy = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
        .iter()
        .find_map(|k| vars.get(*k).filter(|v| !v.is_empty()));
    if let Some(p) = proxy {
        let no_proxy = vars
            .get("NO_PROXY")
            .or_else(|| vars.get("no_proxy"))
            .cloned()
            .unwrap_or_default();
        let missing: Vec<&str> = ["127.0.0.1", "localhost", ".svc", "10.96.0.0/12", "10.244.0.0/16"]
            .into_iter()
            .filter(|n| !no_proxy.split(',').any(|x| x.trim() == *n))
            .collect();
        if !missing.is_empty() {
            f.push(warn(
                "proxy",
                format!("a proxy is set ({p}) but NO_PROXY does not cover {}: calls to the cluster would go through the proxy", missing.join(", ")),
                format!("export NO_PROXY={}{}{}", no_proxy, if no_proxy.is_empty() { "" } else { "," }, missing.join(",")),
            ));
        }
    }
    f
}

/// Node containers of this environment that have exited (after a Docker or host restart).
pub fn nodes(world: &World, config: &Config, cancel: &Cancel) -> Vec<Finding> {
    if config.project.driver != Driver::Kind {
        return vec![];
    }
    match world
        .engine
        .containers_labelled(crate::adapters::kind::CLUSTER_LABEL, &config.project.name, cancel)
    {
        Ok(nodes) => {
            let down: Vec<String> = nodes.iter().filter(|n| !n.running).map(|n| n.name.clone()).collect();
            if down.is_empty() {
                vec![]
            } else {
                vec![warn(
                    "nodes",
                    format!(
                        "node container(s) {} of `{}` have exited",
                        down.join(", "),
                        config.project.name
                    ),
                    "`devenv up` starts them again",
                )]
            }
        }
        Err(_) => vec![],
    }
}

/// minikube needs a driver; its DRV_NOT_DETECTED failure, before minikube gets to say it.
pub fn minikube_driver(host: &dyn Host, config: &Config, cancel: &Cancel) -> Vec<Finding> {
    if config.project.driver != Driver::Minikube {
        return vec![];
    }
    let wanted = config.project.minikube_driver.clone();
    let candidates: &[(&str, &str)] = &[
        ("docker", "docker"),
        ("podman", "podman"),
        ("kvm2", "virsh"),
        ("qemu2", "qemu-system-x86_64"),
        ("virtualbox", "VBoxManage"),
    ];
    let available: Vec<&str> = candidates
        .iter()
        .filter(|(_, bin)| !host.tool(bin, cancel).is_empty())
        .map(|(d, _)| *d)
        .collect();
    match (&wanted, available.is_empty()) {
        (Some(w), _) if !available.contains(&w.as_str()) && candidates.iter().any(|(d, _)| d == w) => {
            vec![block(
                "minikube driver",
                format!("minikube.driver is {w}, but its tool is not installed"),
                format!("install {w}, or change minikube.driver in devenv.yaml"),
            )]
        }
        (None, true) => vec![block(
            "minikube driver",
            "minikube will find no driver (DRV_NOT_DETECTED): none of docker, podman, kvm2, qemu, virtualbox is installed",
            "install and start Docker, then run devenv again",
        )],
        _ => vec![ok("minikube driver", format!("available: {}", available.join(", ")))],
    }
}

/// kind's nodes on another engine than Docker (`KIND_EXPERIMENTAL_PROVIDER=podman` or
/// `nerdctl`): devenv finds, starts, stops and loads kind's nodes through Docker only, so it
/// would not see them.
pub fn kind_provider(config: &Config, vars: &BTreeMap<String, String>) -> Vec<Finding> {
    if config.project.driver != Driver::Kind {
        return vec![];
    }
    match vars
        .get("KIND_EXPERIMENTAL_PROVIDER")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        None | Some("docker") => vec![],
        Some(p) => vec![block(
            "kind provider",
            format!(
                "KIND_EXPERIMENTAL_PROVIDER={p}: kind would make the nodes with {p}, and devenv finds, starts, stops and loads kind's nodes through Docker only"
            ),
            format!(
                "unset KIND_EXPERIMENTAL_PROVIDER for devenv (its kind driver needs Docker), or use `driver: minikube` with `minikube: {{driver: {p}}}` in devenv.yaml"
            ),
        )],
    }
}

/// Everything `devenv doctor` checks.
/// Every check but the tools' (which the command's context found already).
pub fn host_checks(world: &World, config: &Config, vars: &BTreeMap<String, String>, cancel: &Cancel) -> Vec<Finding> {
    let mut f = kind_provider(config, vars);
    f.extend(engine(world.host.as_ref(), config, cancel));
    f.extend(minikube_driver(world.host.as_ref(), config, cancel));
    let published = if config.project.driver == Driver::Kind {
        world
            .engine
            .published(crate::world::CLUSTER_LABEL, cancel)
            .unwrap_or_default()
    } else {
        vec![]
    };
    f.extend(ports(world.host.as_ref(), config, &published, &config.project.name));
    f.extend(limits(world.host.as_ref(), vars));
    f.extend(nodes(world, config, cancel));
    f
}

/// The blocking findings as one error (exit 3), or Ok.
pub fn stop_if_blocking(findings: &[Finding]) -> crate::error::Result<()> {
    let blocking: Vec<&Finding> = findings.iter().filter(|f| f.level == Level::Blocking).collect();
    if blocking.is_empty() {
        return Ok(());
    }
    let message = blocking
        .iter()
        .map(|f| format!("{}: {}", f.check, f.message))
        .collect::<Vec<_>>()
        .join("\n  ");
    let help = blocking
        .iter()
        .filter_map(|f| f.help.clone())
        .collect::<Vec<_>>()
        .join("\n      ");
    Err(crate::error::Error::prerequisite(
        format!("not ready to go on; nothing was changed:\n  {message}"),
        help,
    ))
}

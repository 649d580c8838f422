//! Loading the configuration: each file from `--dir` when present, otherwise the copy compiled
//! into the binary (the files at the top of devenv's repository), then strict validation of each
//! file and of the files against each other.

pub mod kind;
pub mod names;
pub mod project;
pub mod versions;
pub mod yaml;

use crate::error::{Error, Location, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use project::{Driver, Ingress, Project};
pub use versions::{Chart, Versions};

/// The default files, exactly as `devenv init` writes them.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("versions.yaml", include_str!("../../versions.yaml")),
    ("kind-config.yaml", include_str!("../../kind-config.yaml")),
    ("devenv.yaml", include_str!("../../devenv.yaml")),
    (
        "helm-values/ingress-nginx.yaml",
        include_str!("../../helm-values/ingress-nginx.yaml"),
    ),
    (
        "helm-values/traefik.yaml",
        include_str!("../../helm-values/traefik.yaml"),
    ),
    (
        "helm-values/postgresql.yaml",
        include_str!("../../helm-values/postgresql.yaml"),
    ),
    ("helm-values/redis.yaml", include_str!("../../helm-values/redis.yaml")),
    (
        "helm-values/monitoring.yaml",
        include_str!("../../helm-values/monitoring.yaml"),
    ),
    (
        "helm-values/metrics-server.yaml",
        include_str!("../../helm-values/metrics-server.yaml"),
    ),
];

pub fn default_text(name: &str) -> Option<&'static str> {
    DEFAULTS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Where one configuration file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    BuiltIn,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub project: Project,
    pub versions: Versions,
    pub kind: kind::KindSummary,
    /// The exact kind-config.yaml text handed to kind.
    pub kind_config_text: String,
    /// Values text per component or release name, from helm-values/<name>.yaml.
    pub helm_values: BTreeMap<String, String>,
    pub sources: BTreeMap<String, Source>,
    /// kind-config.yaml maps devenv's default host ports (80, 443, 15432, 16379): nobody chose
    /// them, so an environment other than the file's own gets ports of its own instead.
    pub default_ports: bool,
    /// The environment is the one devenv.yaml names (no `-n` for another name, not ephemeral).
    pub primary: bool,
}

/// Overrides from the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `~` in devenv.yaml's paths (`$HOME`, read once by the caller).
    pub home: Option<PathBuf>,
    pub name: Option<String>,
    pub driver: Option<Driver>,
    pub context: Option<String>,
}

struct Loaded {
    display: String,
    text: String,
    source: Source,
}

/// The largest configuration file devenv reads.
pub const MAX_FILE: u64 = 1 << 20;

fn read(dir: &Path, shown: &Path, name: &str) -> Result<Option<Loaded>> {
    let path = dir.join(name);
    let display = display_path(shown, name);
    match crate::files::read_text(&path, MAX_FILE, crate::files::Links::Follow) {
        Ok(Some(text)) => Ok(Some(Loaded {
            display,
            text,
            source: Source::File(path),
        })),
        Ok(None) => Ok(None),
        Err(why) => Err(Error::config(
            Location {
                file: display,
                line: 0,
                column: 0,
            },
            format!("the file {why}"),
            if why.contains("UTF-8") {
                "save it as UTF-8".to_string()
            } else {
                format!("make {name} a regular file of at most 1 MiB, or remove it to use the built-in default")
            },
        )),
    }
}

fn display_path(dir: &Path, name: &str) -> String {
    if dir == Path::new(".") || dir.as_os_str().is_empty() {
        name.to_string()
    } else {
        dir.join(name).display().to_string()
    }
}

fn read_or_default(dir: &Path, shown: &Path, name: &str) -> Result<Loaded> {
    Ok(match read(dir, shown, name)? {
        Some(l) => l,
        None => Loaded {
            display: format!("{name} (built-in default)"),
            text: default_text(name)
                .expect("every default file is compiled in")
                .to_string(),
            source: Source::BuiltIn,
        },
    })
}

/// Loads from `dir` (absolute); `shown` is the directory as the user named it, for messages.
pub fn load(dir: &Path, shown: &Path, overrides: &Overrides) -> Result<Config> {
    let mut sources = BTreeMap::new();

    let project_file = read(dir, shown, project::FILE)?;
    let mut project = match &project_file {
        Some(l) if yaml::is_blank(&l.text) => {
            project::ProjectFile::default().validate(&l.display, dir, overrides.home.as_deref())?
        }
        Some(l) => yaml::parse::<project::ProjectFile>(&l.display, &l.text)?.validate(
            &l.display,
            dir,
            overrides.home.as_deref(),
        )?,
        None => project::ProjectFile::default().validate(project::FILE, dir, overrides.home.as_deref())?,
    };
    sources.insert(
        project::FILE.to_string(),
        project_file
            .as_ref()
            .map(|l| l.source.clone())
            .unwrap_or(Source::BuiltIn),
    );
    let project_display = project_file
        .as_ref()
        .map(|l| l.display.clone())
        .unwrap_or_else(|| project::FILE.to_string());
    let file_name = project.name.clone();
    if let Some(name) = &overrides.name {
        names::environment(name).map_err(|m| {
            Error::usage(
                format!("--name `{name}` {m}"),
                "use a short lowercase name such as `myapp-ci`",
            )
        })?;
        project.name = name.clone();
    }
    if let Some(driver) = overrides.driver {
        project.driver = driver;
        project.driver_at = None;
    }
    if let Some(context) = &overrides.context {
        project.context = Some(context.clone());
    }
    // devenv never guesses which cluster an existing one is: the file that chose the driver
    // must name its context.
    if project.driver == Driver::Existing
        && project.context.is_none()
        && let Some(at) = &project.driver_at
    {
        return Err(Error::config(
            at.clone(),
            "`driver: existing` needs the kube context of that cluster, and devenv.yaml names none",
            "add `context: NAME` to devenv.yaml (see `kubectl config get-contexts`), or pass --context NAME",
        ));
    }

    let v = read_or_default(dir, shown, versions::FILE)?;
    let versions = yaml::parse::<versions::VersionsFile>(&v.display, &v.text)?.validate(&v.display)?;
    sources.insert(versions::FILE.to_string(), v.source);

    let k = read_or_default(dir, shown, kind::FILE)?;
    let kind_file = yaml::parse::<kind::KindConfig>(&k.display, &k.text)?;
    let kind = kind_file.validate(&k.display, &project.name)?;
    kind_file.check_reserved_mounts(&k.display)?;
    sources.insert(kind::FILE.to_string(), k.source);

    let mut helm_values = BTreeMap::new();
    let mut wanted: Vec<String> = project::COMPONENT_NAMES.iter().map(|s| s.to_string()).collect();
    wanted.extend(project.releases.iter().map(|r| r.name.clone()));
    for name in &wanted {
        let rel = format!("helm-values/{name}.yaml");
        let loaded = match read(dir, shown, &rel)? {
            Some(l) => Some(l),
            None => default_text(&rel).map(|t| Loaded {
                display: format!("{rel} (built-in default)"),
                text: t.to_string(),
                source: Source::BuiltIn,
            }),
        };
        if let Some(l) = loaded {
            if !yaml::is_blank(&l.text) {
                yaml::parse::<serde_json::Map<String, serde_json::Value>>(&l.display, &l.text)?;
            }
            sources.insert(rel, l.source);
            helm_values.insert(name.clone(), l.text);
        }
    }
    // A values file that belongs to nothing is almost always a misspelt component name.
    if let Ok(entries) = std::fs::read_dir(dir.join("helm-values")) {
        let known: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let entries: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        // `postgresql.yml` for a component devenv reads as `postgresql.yaml`: never used.
        if let Some(f) = entries
            .iter()
            .filter(|f| f.strip_suffix(".yml").is_some_and(|stem| known.contains(&stem)))
            .min()
        {
            let stem = f.trim_end_matches(".yml");
            return Err(Error::config(
                Location {
                    file: display_path(shown, &format!("helm-values/{f}")),
                    line: 0,
                    column: 0,
                },
                format!(
                    "devenv reads the values of `{stem}` from helm-values/{stem}.yaml, so this file would never be used"
                ),
                format!("rename it to helm-values/{stem}.yaml"),
            ));
        }
        let entries = entries.into_iter();
        let mut stray: Vec<String> = entries
            .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
            .filter(|f| {
                let stem = f.trim_end_matches(".yaml").trim_end_matches(".yml");
                !known.contains(&stem)
                    && !project
                        .releases
                        .iter()
                        .any(|r| r.values.iter().any(|v| v.ends_with(f.as_str())))
            })
            .collect();
        stray.sort();
        if let Some(f) = stray.first() {
            let stem = f.trim_end_matches(".yaml").trim_end_matches(".yml");
            let help = match yaml::did_you_mean(stem, &known) {
                Some(best) => format!("did you mean helm-values/{best}.yaml?"),
                None => format!(
                    "name it after a component ({}) or a release in devenv.yaml",
                    known.join(", ")
                ),
            };
            return Err(Error::config(
                Location {
                    file: display_path(shown, &format!("helm-values/{f}")),
                    line: 0,
                    column: 0,
                },
                format!("no component or release is named `{stem}`, so these values would never be used"),
                help,
            ));
        }
    }

    let default_ports = {
        let default = yaml::parse::<kind::KindConfig>(kind::FILE, default_text(kind::FILE).unwrap_or_default())
            .and_then(|k| k.validate(kind::FILE, &project.name));
        let key = |m: &kind::HostMapping| (m.node, m.container_port, m.host_port, m.listen_address.clone());
        default.is_ok_and(|d| {
            let mut a: Vec<_> = d.mappings.iter().map(key).collect();
            let mut b: Vec<_> = kind.mappings.iter().map(key).collect();
            a.sort();
            b.sort();
            a == b
        })
    };
    let primary = project.name == file_name;
    let config = Config {
        dir: dir.to_path_buf(),
        project,
        versions,
        kind,
        kind_config_text: k.text,
        helm_values,
        sources,
        default_ports,
        primary,
    };
    check_host_mappings(&config, &project_display, &k.display)?;
    Ok(config)
}

/// Every NodePort devenv exposes must be mapped to a host port by kind-config.yaml, or the
/// endpoint would be unreachable from the host and `devenv env` would hand out a dead URL.
fn check_host_mappings(config: &Config, project_display: &str, kind_display: &str) -> Result<()> {
    if config.project.driver != Driver::Kind {
        return Ok(());
    }
    for (what, np) in config.endpoints() {
        if config.kind.mappings.iter().any(|m| m.container_port == np.port) {
            continue;
        }
        let location = if np.line > 0 {
            Location {
                file: project_display.to_string(),
                line: np.line,
                column: np.column,
            }
        } else {
            Location {
                file: kind_display.to_string(),
                line: config.kind.nodes_line,
                column: 1,
            }
        };
        return Err(Error::config(
            location,
            format!(
                "the {what} NodePort {} has no host mapping in kind-config.yaml, so it cannot be reached from this machine",
                np.port
            ),
            format!(
                "add `{{containerPort: {}, hostPort: <free port>, listenAddress: 127.0.0.1}}` to the control-plane node's extraPortMappings in kind-config.yaml, or change nodePorts.{what} in devenv.yaml",
                np.port
            ),
        ));
    }
    Ok(())
}

impl Config {
    /// This environment gets host ports of its own rather than kind-config.yaml's: a kind
    /// environment other than the one devenv.yaml names, while the file maps only devenv's
    /// defaults (ports a user wrote down are theirs to keep).
    pub fn wants_own_ports(&self) -> bool {
        self.project.driver == Driver::Kind && self.default_ports && !self.primary
    }

    /// Maps each node port to the host port given for it (`container port -> host port`): the
    /// mappings everything else reads, and the kind config handed to kind.
    pub fn use_host_ports(&mut self, ports: &BTreeMap<u16, u16>) -> Result<()> {
        let mut by_host = BTreeMap::new();
        for m in &mut self.kind.mappings {
            if let Some(&p) = ports.get(&m.container_port) {
                by_host.insert(m.host_port, p);
                m.host_port = p;
                m.chosen = true;
            }
        }
        self.kind_config_text = kind::with_host_ports(&self.kind_config_text, &by_host)?;
        Ok(())
    }

    /// The endpoints that are switched on, with their NodePorts.
    pub fn endpoints(&self) -> Vec<(&'static str, project::NodePort)> {
        let p = &self.project;
        let mut out = Vec::new();
        if p.ingress != Ingress::None {
            out.push(("http", p.node_ports.http));
            out.push(("https", p.node_ports.https));
        }
        if p.postgresql {
            out.push(("postgresql", p.node_ports.postgresql));
        }
        if p.redis {
            out.push(("redis", p.node_ports.redis));
        }
        out
    }

    /// The endpoints kind-config.yaml maps on every network interface (`listenAddress: 0.0.0.0`,
    /// or none, which kind takes as 0.0.0.0): reachable by anyone who can reach this machine.
    pub fn exposed(&self) -> Vec<(&'static str, &kind::HostMapping)> {
        if self.project.driver != Driver::Kind {
            return vec![];
        }
        self.endpoints()
            .into_iter()
            .filter_map(|(what, np)| {
                let m = self.host_port(np.port)?;
                let unspecified = m
                    .listen_address
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_unspecified());
                unspecified.then_some((what, m))
            })
            .collect()
    }

    /// What exposing an endpoint gives away, for the warning.
    pub fn exposure_warning(what: &str, m: &kind::HostMapping) -> String {
        let consequence = match what {
            "postgresql" => {
                "anyone who can reach this machine can try to log in to PostgreSQL (its password is generated, but the port is open)"
            }
            "redis" => "anyone who can reach this machine can read and write Redis, which has no password",
            _ => "anyone who can reach this machine can reach the ingress and what it routes to",
        };
        format!(
            "kind-config.yaml line {} maps the {what} port {} on every network interface (listenAddress {}): {consequence}. Write `listenAddress: 127.0.0.1` to keep it to this machine.",
            m.line, m.host_port, m.listen_address
        )
    }

    /// The host port that reaches `node_port`, from kind-config.yaml.
    pub fn host_port(&self, node_port: u16) -> Option<&kind::HostMapping> {
        self.kind.mappings.iter().find(|m| m.container_port == node_port)
    }
}

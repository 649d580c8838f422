//! devenv.yaml: what differs per project.

use super::names;
use super::versions::{Chart, chart_ref};
use super::yaml::at;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::time::Duration;

pub const FILE: &str = "devenv.yaml";

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Kind,
    Minikube,
    Existing,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Kind => "kind",
            Driver::Minikube => "minikube",
            Driver::Existing => "existing",
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ingress {
    IngressNginx,
    Traefik,
    None,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectFile {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub driver: Option<Spanned<Driver>>,
    #[serde(default)]
    pub ingress: Option<Ingress>,
    #[serde(default)]
    pub node_ports: NodePortsFile,
    #[serde(default)]
    pub postgresql: PostgresFile,
    #[serde(default)]
    pub redis: Toggle,
    #[serde(default)]
    pub images: Vec<Spanned<String>>,
    #[serde(default)]
    pub releases: Vec<ReleaseFile>,
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    #[serde(default)]
    pub export_context: Option<bool>,
    /// Keep every pinned image on this machine's engine and load it into the nodes from there.
    #[serde(default)]
    pub image_cache: Option<bool>,
    /// With `driver: existing`: the kube context to use.
    #[serde(default)]
    pub context: Option<Spanned<String>>,
    #[serde(default)]
    pub minikube: MinikubeFile,
    /// Optional: Prometheus and Grafana (kube-prometheus-stack).
    #[serde(default)]
    pub monitoring: OffToggle,
    /// Optional: metrics-server, for `kubectl top` and HPAs.
    #[serde(default)]
    pub metrics_server: OffToggle,
    /// Optional: a directory on this machine shared by pods through a ReadWriteMany claim.
    #[serde(default)]
    pub shared_data: SharedDataFile,
}

/// An optional component's switch: off unless `enabled: true`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OffToggle {
    #[serde(default)]
    pub enabled: Option<Spanned<bool>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SharedDataFile {
    #[serde(default)]
    pub enabled: Option<Spanned<bool>>,
    /// The directory on this machine; default: the state directory's `data/shared`.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub claim: Option<Spanned<String>>,
    #[serde(default)]
    pub size: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MinikubeFile {
    /// docker, podman, kvm2, qemu2, virtualbox, hyperkit, vfkit, hyperv, none, ssh
    #[serde(default)]
    pub driver: Option<Spanned<String>>,
}

const MINIKUBE_DRIVERS: &[&str] = &[
    "docker",
    "podman",
    "kvm2",
    "qemu2",
    "qemu",
    "virtualbox",
    "hyperkit",
    "vfkit",
    "hyperv",
    "parallels",
    "vmware",
    "none",
    "ssh",
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NodePortsFile {
    #[serde(default)]
    pub http: Option<Spanned<super::yaml::Number>>,
    #[serde(default)]
    pub https: Option<Spanned<super::yaml::Number>>,
    #[serde(default)]
    pub postgresql: Option<Spanned<super::yaml::Number>>,
    #[serde(default)]
    pub redis: Option<Spanned<super::yaml::Number>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    pub enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Toggle { enabled: true }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresFile {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// kind: keep PostgreSQL's data in a directory on this machine, mounted into the nodes, so
    /// that it survives `down` + `up` and `up --recreate`.
    #[serde(default = "yes")]
    pub persistent_data: bool,
}

fn yes() -> bool {
    true
}

impl Default for PostgresFile {
    fn default() -> Self {
        PostgresFile {
            enabled: true,
            persistent_data: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseFile {
    pub name: Spanned<String>,
    pub chart: Spanned<String>,
    #[serde(default)]
    pub repository: Option<Spanned<String>>,
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub values: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    #[serde(default)]
    pub cluster: Option<Spanned<String>>,
    #[serde(default)]
    pub component: Option<Spanned<String>>,
    #[serde(default)]
    pub test: Option<Spanned<String>>,
}

/// A NodePort devenv gives one endpoint, and where it was declared (None: the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePort {
    pub port: u16,
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone)]
pub struct NodePorts {
    pub http: NodePort,
    pub https: NodePort,
    pub postgresql: NodePort,
    pub redis: NodePort,
}

#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub chart: Chart,
    /// Values files, relative to the config directory.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub cluster: Duration,
    pub component: Duration,
    pub test: Duration,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub driver: Driver,
    /// Where devenv.yaml sets `driver:` (None: the default, or --driver).
    pub driver_at: Option<crate::error::Location>,
    pub ingress: Ingress,
    pub node_ports: NodePorts,
    pub postgresql: bool,
    /// PostgreSQL's data lives in the state directory's `data/`, mounted into every kind node.
    pub persistent_data: bool,
    pub redis: bool,
    pub images: Vec<String>,
    pub releases: Vec<Release>,
    pub timeouts: Timeouts,
    /// Whether kind also adds the cluster's context to the user's kubeconfig and selects it.
    pub export_context: bool,
    /// kind: every image a component runs (its pins) and the smoke images are pulled once into
    /// this machine's engine and loaded into the nodes from there (`imageCache`, default on).
    pub image_cache: bool,
    pub context: Option<String>,
    pub minikube_driver: Option<String>,
    /// Optional components devenv.yaml switches on (`enabled: true`), with where it says so
    /// (`devenv.yaml:12:14`, for a contradicting `--without`). `enabled: false` is the default,
    /// which `--with` may override, so it is not kept.
    pub switched_on: std::collections::BTreeMap<&'static str, String>,
    pub shared: SharedData,
}

/// The shared data volume's settings (used when `shared-data` is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedData {
    /// The directory on this machine, absolute; None: the state directory's `data/shared`.
    pub path: Option<std::path::PathBuf>,
    pub namespace: String,
    pub claim: String,
    pub size: String,
}

/// The optional components, by the names `--with` and `--without` take.
pub const OPTIONAL: &[&str] = &["monitoring", "metrics-server", "shared-data"];

pub const COMPONENT_NAMES: &[&str] = &[
    "ingress-nginx",
    "traefik",
    "postgresql",
    "redis",
    "monitoring",
    "metrics-server",
    "shared-data",
];

impl ProjectFile {
    pub fn validate(self, file: &str, dir: &std::path::Path, home: Option<&std::path::Path>) -> Result<Project> {
        let name = match &self.name {
            Some(n) => {
                names::environment(&n.value).map_err(|m| {
                    Error::config(
                        at(file, n),
                        format!("name `{}` {m}", n.value),
                        "use a short lowercase name such as `myapp` (it becomes the kind cluster name)",
                    )
                })?;
                n.value.clone()
            }
            None => "devenv".to_string(),
        };
        let port = |p: &Option<Spanned<super::yaml::Number>>, default: u16, what: &str| -> Result<NodePort> {
            match p {
                None => Ok(NodePort {
                    port: default,
                    line: 0,
                    column: 0,
                }),
                Some(s) => Ok(NodePort {
                    port: super::yaml::port(
                        file,
                        s,
                        &format!("nodePorts.{what}"),
                        30000..=32767,
                        "Kubernetes' NodePort range is 30000-32767: pick a port in it and map it in kind-config.yaml",
                    )?,
                    line: s.referenced.line(),
                    column: s.referenced.column(),
                }),
            }
        };
        let np = &self.node_ports;
        let node_ports = NodePorts {
            http: port(&np.http, 30080, "http")?,
            https: port(&np.https, 30443, "https")?,
            postgresql: port(&np.postgresql, 30432, "postgresql")?,
            redis: port(&np.redis, 30379, "redis")?,
        };
        let all = [
            ("http", &np.http, node_ports.http.port),
            ("https", &np.https, node_ports.https.port),
            ("postgresql", &np.postgresql, node_ports.postgresql.port),
            ("redis", &np.redis, node_ports.redis.port),
        ];
        for (i, (a, sa, pa)) in all.iter().enumerate() {
            for (b, sb, pb) in &all[i + 1..] {
                if pa == pb {
                    let loc = sb
                        .as_ref()
                        .or(sa.as_ref())
                        .map(|s| at(file, s))
                        .unwrap_or(crate::error::Location {
                            file: file.into(),
                            line: 1,
                            column: 1,
                        });
                    return Err(Error::config(
                        loc,
                        format!("nodePorts.{a} and nodePorts.{b} are both {pa}"),
                        "give each endpoint its own NodePort",
                    ));
                }
            }
        }
        let mut images = Vec::new();
        for img in &self.images {
            names::pinned_image(&img.value).map_err(|m| {
                Error::config(
                    at(file, img),
                    format!("images: {m}"),
                    "name the local image with an explicit tag, e.g. myapp:dev",
                )
            })?;
            images.push(img.value.clone());
        }
        let mut releases: Vec<Release> = Vec::new();
        for r in &self.releases {
            names::dns_label(&r.name.value, 53).map_err(|m| {
                Error::config(
                    at(file, &r.name),
                    format!("releases: name `{}` {m}", r.name.value),
                    "helm release names are lowercase DNS labels of at most 53 characters",
                )
            })?;
            if COMPONENT_NAMES.contains(&r.name.value.as_str()) || releases.iter().any(|x| x.name == r.name.value) {
                return Err(Error::config(
                    at(file, &r.name),
                    format!("releases: the name `{}` is already taken", r.name.value),
                    "give each release its own name",
                ));
            }
            let namespace = match &r.namespace {
                Some(ns) => {
                    names::dns_label(&ns.value, 63).map_err(|m| {
                        Error::config(
                            at(file, ns),
                            format!("releases.{}.namespace `{}` {m}", r.name.value, ns.value),
                            "namespaces are lowercase DNS labels",
                        )
                    })?;
                    ns.value.clone()
                }
                None => r.name.value.clone(),
            };
            let what = format!("releases.{}", r.name.value);
            let mut chart = chart_ref(file, &what, &r.chart, r.repository.as_ref(), r.version.as_ref())?;
            if super::versions::is_local_chart(&chart.chart) && !dir.join(&chart.chart).is_dir() {
                return Err(Error::config(
                    at(file, &r.chart),
                    format!("{what}: chart directory `{}` does not exist", chart.chart),
                    "the path is relative to the directory holding devenv.yaml",
                ));
            }
            chart.images = vec![];
            let mut values = Vec::new();
            for v in &r.values {
                if !dir.join(&v.value).is_file() {
                    return Err(Error::config(
                        at(file, v),
                        format!("{what}.values: `{}` does not exist", v.value),
                        "the path is relative to the directory holding devenv.yaml",
                    ));
                }
                values.push(v.value.clone());
            }
            releases.push(Release {
                name: r.name.value.clone(),
                namespace,
                chart,
                values,
            });
        }
        let mut switched_on = std::collections::BTreeMap::new();
        for (name, toggle) in [
            ("monitoring", &self.monitoring.enabled),
            ("metrics-server", &self.metrics_server.enabled),
            ("shared-data", &self.shared_data.enabled),
        ] {
            if let Some(t) = toggle.as_ref().filter(|t| t.value) {
                let l = at(file, t);
                switched_on.insert(name, format!("{}:{}:{}", l.file, l.line, l.column));
            }
        }
        let shared = shared_data(file, dir, home, &self.shared_data)?;
        if let Some(p) = &self.shared_data.path
            && self.driver.as_ref().map_or(Driver::Kind, |d| d.value) != Driver::Kind
        {
            return Err(Error::config(
                at(file, p),
                "sharedData.path mounts a directory of this machine into the nodes, which only the kind driver does",
                "remove sharedData.path, or use `driver: kind`",
            ));
        }
        let t = &self.timeouts;
        let timeouts = Timeouts {
            cluster: duration(file, "timeouts.cluster", t.cluster.as_ref(), 300)?,
            component: duration(file, "timeouts.component", t.component.as_ref(), 300)?,
            test: duration(file, "timeouts.test", t.test.as_ref(), 60)?,
        };
        Ok(Project {
            name,
            driver: self.driver.as_ref().map_or(Driver::Kind, |d| d.value),
            driver_at: self.driver.as_ref().map(|d| super::yaml::at(file, d)),
            ingress: self.ingress.unwrap_or(Ingress::IngressNginx),
            node_ports,
            postgresql: self.postgresql.enabled,
            persistent_data: self.postgresql.persistent_data,
            redis: self.redis.enabled,
            images,
            releases,
            timeouts,
            export_context: self.export_context.unwrap_or(true),
            image_cache: self.image_cache.unwrap_or(true),
            context: self.context.as_ref().map(|c| c.value.clone()),
            minikube_driver: match &self.minikube.driver {
                Some(d) if !MINIKUBE_DRIVERS.contains(&d.value.as_str()) => {
                    let help = match super::yaml::did_you_mean(&d.value, MINIKUBE_DRIVERS) {
                        Some(b) => format!("did you mean `{b}`?"),
                        None => format!("use one of: {}", MINIKUBE_DRIVERS.join(", ")),
                    };
                    return Err(Error::config(
                        at(file, d),
                        format!("minikube.driver `{}` is not a minikube driver", d.value),
                        help,
                    ));
                }
                d => d.as_ref().map(|d| d.value.clone()),
            },
            switched_on,
            shared,
        })
    }
}

fn shared_data(
    file: &str,
    dir: &std::path::Path,
    home: Option<&std::path::Path>,
    f: &SharedDataFile,
) -> Result<SharedData> {
    let label = |v: &Option<Spanned<String>>, field: &str, default: &str, max: usize| -> Result<String> {
        match v {
            None => Ok(default.to_string()),
            Some(s) => names::dns_label(&s.value, max).map(|_| s.value.clone()).map_err(|m| {
                Error::config(
                    at(file, s),
                    format!("sharedData.{field} `{}` {m}", s.value),
                    "Kubernetes names are lowercase DNS labels, e.g. `shared-data`",
                )
            }),
        }
    };
    let namespace = label(&f.namespace, "namespace", "default", 63)?;
    let claim = label(&f.claim, "claim", "shared-data", 63)?;
    let size = match &f.size {
        None => "1Gi".to_string(),
        Some(s) => {
            let v = s.value.trim();
            let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = &v[digits.len()..];
            if digits.is_empty()
                || !digits.chars().all(|c| c.is_ascii_digit())
                || !["", "Ki", "Mi", "Gi", "Ti", "K", "M", "G", "T"].contains(&unit)
                || digits.parse::<u64>().ok() == Some(0)
            {
                return Err(Error::config(
                    at(file, s),
                    format!("sharedData.size `{}` is not a Kubernetes quantity", s.value),
                    "write a size such as 1Gi or 500Mi",
                ));
            }
            v.to_string()
        }
    };
    let path = match &f.path {
        None => None,
        Some(p) => {
            let raw = p.value.trim();
            let expanded = match raw.strip_prefix("~/") {
                Some(rest) => match home {
                    Some(h) => h.join(rest),
                    None => std::path::PathBuf::from(raw),
                },
                None => std::path::PathBuf::from(raw),
            };
            // Without `.` parts: the same directory must give the same mount (and cluster digest).
            let abs: std::path::PathBuf = if expanded.is_absolute() {
                expanded
            } else {
                dir.join(expanded)
            }
            .components()
            .collect();
            if raw.is_empty() || abs.is_file() {
                return Err(Error::config(
                    at(file, p),
                    format!("sharedData.path `{}` is not a directory", p.value),
                    "name a directory (it is created when missing); relative paths start at the directory holding devenv.yaml",
                ));
            }
            Some(abs)
        }
    };
    Ok(SharedData {
        path,
        namespace,
        claim,
        size,
    })
}

fn duration(file: &str, what: &str, s: Option<&Spanned<String>>, default_secs: u64) -> Result<Duration> {
    let Some(s) = s else {
        return Ok(Duration::from_secs(default_secs));
    };
    parse_duration(&s.value).map_err(|m| {
        Error::config(
            at(file, s),
            format!("{what}: {m}"),
            "write a duration such as 90s, 5m or 1h",
        )
    })
}

/// The longest timeout devenv takes.
pub const MAX_DURATION_SECS: u64 = 24 * 3600;

/// "90s", "5m", "1h", "1m30s".
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let mut total = 0u64;
    let mut num = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(format!("`{text}` is not a duration")),
        };
        let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a duration"))?;
        total = total.saturating_add(n.saturating_mul(mult));
        num.clear();
        any = true;
    }
    if !num.is_empty() {
        return Err(format!("`{text}` has no unit"));
    }
    if !any || total == 0 {
        return Err(format!("`{text}` is not a positive duration"));
    }
    // Deadlines are added to clocks: a duration beyond any wait devenv does is a mistake.
    if total > MAX_DURATION_SECS {
        return Err(format!("`{text}` is longer than 24h"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("90").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
        // Added to a clock, this would overflow: refused, not a panic.
        assert!(
            parse_duration("18446744073709551615s")
                .unwrap_err()
                .contains("longer than 24h")
        );
        assert!(parse_duration("25h").is_err());
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    }
}

//! The components devenv installs, each in one file that owns everything devenv knows of it: its
//! chart pin, the values devenv generates for it (data, serialized once), the images it runs, the
//! objects devenv expects its chart to make (what readiness waits on, the Service and its
//! NodePorts, the claim and the user its pods run as), its smoke probes, its in-cluster target and
//! its `devenv env` variables. What each file says of its chart is checked against real Helm
//! renders of the pinned chart (`tests/it/charts.rs`).
//!
//! The rest of devenv reads a [`ComponentSpec`] and never a component's name.

pub mod ingress_nginx;
pub mod metrics_server;
pub mod monitoring;
pub mod postgresql;
pub mod redis;
pub mod release;
pub mod shared_data;
pub mod traefik;
pub mod values;

use crate::config::names::ImageRef;
use crate::config::{Chart, Config, Driver};
use crate::error::{Error, Result};
use crate::world::{Probe, VolumeSpec, Workloads};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A short, stable digest of what makes something (a release, the cluster, the smoke run): each
/// part length-prefixed, so that parts can never run into each other.
pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// A password devenv generates for the environment and keeps in `credentials.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    PostgresPassword,
    GrafanaPassword,
}

/// One piece of a `devenv env` value: text, or a generated password put in only when printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Secret(Secret),
}

/// A variable `devenv env` exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: &'static str,
    pub value: Vec<Part>,
}

impl EnvVar {
    pub fn text(name: &'static str, value: impl Into<String>) -> EnvVar {
        EnvVar {
            name,
            value: vec![Part::Text(value.into())],
        }
    }
}

#[derive(Debug, Clone)]
pub struct ValuesSource {
    /// How to name it to a user: `helm-values/postgresql.yaml` or `… (built-in default)`.
    pub display: String,
    pub text: String,
    /// The file on disk, when the user has one.
    pub path: Option<std::path::PathBuf>,
}

/// One helm release devenv installs, as the configuration asks for it.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    pub name: String,
    pub namespace: String,
    pub chart: Chart,
    /// The user's values files, in the order helm gets them.
    pub values: Vec<ValuesSource>,
    /// The values devenv computes (NodePorts, image pins, Ingress hosts): one mapping, written
    /// to a user-only file at install time after the user's files, so it wins.
    pub generated: Value,
    /// Generated passwords set into `generated` at install time (JSON pointer, which), kept out
    /// of the digest and of every message.
    pub secrets: Vec<(&'static str, Secret)>,
    pub digest: String,
    /// Other components this one is installed after.
    pub after: Vec<String>,
    /// A project release: installed after the local images are loaded.
    pub uses_images: bool,
    /// What `up` waits for after helm returns, in order: the release's own workloads, then any
    /// an operator of the release creates.
    pub ready: Vec<Workloads>,
    /// Volumes made before the install (PostgreSQL's data directory).
    pub volumes: Vec<VolumeSpec>,
    /// Checks from this machine.
    pub probes: Vec<Probe>,
    /// A Service the in-cluster check resolves by cluster DNS and connects to.
    pub in_cluster: Option<(String, u16)>,
    /// What `devenv env` exports for it.
    pub env: Vec<EnvVar>,
    /// The endpoint `status` shows.
    pub endpoint: Option<String>,
    /// Its smoke checks include the metrics API.
    pub metrics_api: bool,
    /// What the user should know about it (the plan shows them).
    pub notes: Vec<String>,
    /// Said once per environment when devenv installs it.
    pub install_notice: Option<String>,
}

impl ComponentSpec {
    /// A release of `chart` named `name` in `namespace`, with the user's `helm-values/<name>.yaml`
    /// (or its built-in default) and nothing generated yet.
    pub fn new(config: &Config, name: &str, namespace: &str, chart: &Chart) -> ComponentSpec {
        let mut values = Vec::new();
        if let Some(text) = config.helm_values.get(name) {
            let rel = format!("helm-values/{name}.yaml");
            let path = match config.sources.get(&rel) {
                Some(crate::config::Source::File(p)) => Some(p.clone()),
                _ => None,
            };
            let display = if path.is_some() {
                rel
            } else {
                format!("{rel} (built-in default)")
            };
            values.push(ValuesSource {
                display,
                text: text.clone(),
                path,
            });
        }
        ComponentSpec {
            name: name.to_string(),
            namespace: namespace.to_string(),
            chart: chart.clone(),
            values,
            generated: Value::Object(Default::default()),
            secrets: vec![],
            digest: String::new(),
            after: vec![],
            uses_images: false,
            ready: vec![Workloads::release(name, namespace)],
            volumes: vec![],
            probes: vec![],
            in_cluster: None,
            env: vec![],
            endpoint: None,
            metrics_api: false,
            notes: vec![],
            install_notice: None,
        }
    }

    /// Sets the digest of what makes the release: chart, version, namespace, the user's values
    /// and the generated ones (never the secrets). The record in the cluster keeps it, so the
    /// next `up` knows the release is unchanged without asking helm.
    pub fn sealed(mut self) -> ComponentSpec {
        let generated = serde_json::to_string(&self.generated).expect("values serialize");
        let mut parts: Vec<&str> = vec![
            &self.chart.chart,
            self.chart.repository.as_deref().unwrap_or(""),
            self.chart.version.as_deref().unwrap_or(""),
            &self.namespace,
        ];
        parts.extend(self.values.iter().map(|v| v.text.as_str()));
        parts.push(&generated);
        self.digest = digest(&parts);
        self
    }

    /// The generated values with the passwords in place: what the install writes, user-only.
    pub fn generated_with(&self, secret: impl Fn(Secret) -> String) -> Value {
        let mut v = self.generated.clone();
        for (pointer, s) in &self.secrets {
            values::set(&mut v, pointer, Value::String(secret(*s)));
        }
        v
    }

    /// The user's values merged in helm's order (their files, then devenv's): the keys devenv
    /// must follow.
    pub fn merged_user_values(&self) -> Value {
        let mut v = Value::Object(Default::default());
        for s in &self.values {
            values::merge(&mut v, values::parse(&s.text));
        }
        v
    }
}

/// What the components are built from.
pub struct Cx<'a> {
    pub config: &'a Config,
}

impl Cx<'_> {
    /// Where this machine reaches a NodePort: the host address and port kind-config.yaml maps it
    /// to. Only kind maps NodePorts to this machine.
    pub fn host_endpoint(&self, node_port: u16) -> Option<(String, u16)> {
        if self.config.project.driver != Driver::Kind {
            return None;
        }
        self.config.host_port(node_port).map(|m| {
            let host = if m.listen_address == "0.0.0.0" {
                "127.0.0.1".to_string()
            } else {
                m.listen_address.clone()
            };
            (host, m.host_port)
        })
    }

    pub fn env_name(&self) -> &str {
        &self.config.project.name
    }
}

/// How the environment's ingress controller is reached.
#[derive(Debug, Clone)]
pub struct IngressRoute {
    /// The IngressClass the controller serves, which devenv's Ingresses name.
    pub class: String,
    /// From this machine: the host address and port mapped to the HTTP NodePort (kind only).
    pub endpoint: Option<(String, u16)>,
}

/// `http://host[:port]` for a Host header served on `port`.
pub fn http_url(host: &str, port: u16) -> String {
    if port == 80 {
        format!("http://{host}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// The images a chart runs that versions.yaml pins for it, each matched to what the chart calls
/// it (the last part of its repository path: `postgres`, `controller`). A pinned image the chart
/// does not run would never be used, so it is an error rather than a silent no-op.
pub fn pinned_images<'a>(component: &str, chart: &Chart, known: &[&'a str]) -> Result<Vec<(&'a str, ImageRef)>> {
    let mut out = Vec::new();
    for image in &chart.images {
        let r = ImageRef::parse(image).map_err(|m| {
            Error::usage(
                format!("versions.yaml: components.{component}.images: {m}"),
                "pin the image as repository:tag",
            )
        })?;
        if r.tag.is_none() {
            return Err(Error::usage(
                format!(
                    "versions.yaml: components.{component}.images: `{image}` has no tag, and the chart names its image by tag"
                ),
                "pin it as repository:tag@sha256:… (the digest is what is pulled)",
            ));
        }
        let Some(role) = known.iter().find(|k| **k == r.name()) else {
            return Err(Error::usage(
                format!(
                    "versions.yaml: components.{component}.images: `{image}` is not an image the {} chart runs (it runs {})",
                    chart.chart,
                    known.join(", ")
                ),
                "pin the chart's own images (a mirror keeps their names), or remove the line",
            ));
        };
        out.push((*role, r));
    }
    Ok(out)
}

/// A pin's tag as charts that take `image.tag` expect it: `18.6`, or `18.6@sha256:…` for a pin
/// with a digest (the runtime pulls by the digest).
pub fn tag_with_digest(r: &ImageRef) -> String {
    let tag = r.tag.clone().unwrap_or_default();
    match &r.digest {
        Some(d) => format!("{tag}@{d}"),
        None => tag,
    }
}

/// The ingress controller's check and variables: from this machine, through the host port
/// mapped to the HTTP NodePort, a request with the run's Host header must reach the run's echo
/// backend. Returns that endpoint (kind only).
fn expose_ingress(cx: &Cx, c: &mut ComponentSpec) -> Option<(String, u16)> {
    let endpoint = cx.host_endpoint(cx.config.project.node_ports.http.port)?;
    let (host, port) = endpoint.clone();
    c.probes.push(Probe {
        name: "http".into(),
        host: host.clone(),
        port,
        check: crate::world::Check::Http {
            host_header: format!("{}.devenv-smoke.localhost", cx.env_name()),
        },
    });
    c.env.push(EnvVar::text("INGRESS_URL", http_url(&host, port)));
    c.endpoint = Some(format!("{host}:{port}"));
    Some(endpoint)
}

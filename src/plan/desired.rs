//! The desired environment, derived from the configuration alone (no I/O).

use crate::config::{Chart, Config, Driver, Ingress};
use crate::error::{Error, Result};
use crate::world::{Check, Probe};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct ValuesSource {
    /// How to name it to a user: `helm-values/postgresql.yaml` or `… (built-in default)`.
    pub display: String,
    pub text: String,
    /// The file on disk, when the user has one.
    pub path: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ComponentSpec {
    pub name: String,
    pub namespace: String,
    pub chart: Chart,
    pub values: Vec<ValuesSource>,
    /// Values devenv computes itself (NodePorts); written to a user-only file at install time.
    pub generated: String,
    pub digest: String,
    /// Other components this one is installed after.
    pub after: Vec<String>,
    /// Values carrying the generated password (`{password}`), added at install time into a
    /// user-only file and kept out of the digest and of every message.
    pub secret_values: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Desired {
    pub name: String,
    pub driver: Driver,
    pub cluster_digest: String,
    pub components: Vec<ComponentSpec>,
    /// Catalogue components switched off in devenv.yaml: removed if devenv installed them.
    pub switched_off: Vec<(String, String)>,
    pub images: Vec<String>,
    pub smoke: bool,
    pub probes: Vec<Probe>,
    /// Services the in-cluster check resolves by cluster DNS and connects to.
    pub in_cluster: Vec<(String, u16)>,
    pub echo_image: String,
    pub probe_image: String,
    /// kind: PostgreSQL's data directory on this machine is mounted into every node.
    pub persistent_data: bool,
    pub volumes: Vec<crate::world::VolumeSpec>,
    /// Digest of everything the smoke tests depend on.
    pub smoke_digest: String,
}

/// Which components a command acts on (`--only`, `--skip`, `--no-test`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub no_test: bool,
}

pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn component(
    config: &Config,
    name: &str,
    namespace: &str,
    chart: &Chart,
    generated: String,
    after: Vec<String>,
) -> ComponentSpec {
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
    let mut parts: Vec<&str> = vec![
        &chart.chart,
        chart.repository.as_deref().unwrap_or(""),
        chart.version.as_deref().unwrap_or(""),
        namespace,
    ];
    parts.extend(values.iter().map(|v| v.text.as_str()));
    parts.push(&generated);
    let digest = digest(&parts);
    ComponentSpec {
        name: name.to_string(),
        namespace: namespace.to_string(),
        chart: chart.clone(),
        values,
        generated,
        digest,
        after,
        secret_values: None,
    }
}

impl Desired {
    pub fn from_config(config: &Config, sel: &Selection) -> Result<Desired> {
        let p = &config.project;
        let v = &config.versions;
        let mut all: Vec<ComponentSpec> = Vec::new();
        let mut switched_off = Vec::new();
        let (http, https) = (p.node_ports.http.port, p.node_ports.https.port);
        match p.ingress {
            Ingress::IngressNginx => {
                all.push(component(config, "ingress-nginx", "ingress-nginx", &v.ingress_nginx,
                    format!("controller:\n  service:\n    type: NodePort\n    nodePorts:\n      http: {http}\n      https: {https}\n"), vec![]));
                switched_off.push(("traefik".to_string(), "traefik".to_string()));
            }
            Ingress::Traefik => {
                all.push(component(config, "traefik", "traefik", &v.traefik,
                    format!("service:\n  type: NodePort\nports:\n  web:\n    nodePort: {http}\n  websecure:\n    nodePort: {https}\n"), vec![]));
                switched_off.push(("ingress-nginx".to_string(), "ingress-nginx".to_string()));
            }
            Ingress::None => {
                switched_off.push(("ingress-nginx".to_string(), "ingress-nginx".to_string()));
                switched_off.push(("traefik".to_string(), "traefik".to_string()));
            }
        }
        let data_ns = "devenv-data";
        let persistent_data = p.driver == Driver::Kind && p.postgresql && p.persistent_data;
        let mut volumes = Vec::new();
        if p.postgresql {
            let mut pg = component(
                config,
                "postgresql",
                data_ns,
                &v.postgresql,
                format!(
                    "service:\n  type: NodePort\n  nodePort: {}\n",
                    p.node_ports.postgresql.port
                ),
                vec![],
            );
            if persistent_data {
                // groundhog2k/postgres mounts an existing claim instead of its own template.
                pg.generated
                    .push_str("storage:\n  persistentVolumeClaimName: postgresql-data\n");
                pg.digest = digest(&[&pg.digest, &pg.generated]);
                volumes.push(crate::world::VolumeSpec {
                    component: "postgresql".into(),
                    name: format!("devenv-{}-postgresql", p.name),
                    namespace: data_ns.into(),
                    claim: "postgresql-data".into(),
                    node_path: format!("{}/postgresql", crate::config::kind::DATA_MOUNT),
                    size: "1Gi".into(),
                });
            }
            // groundhog2k/postgres: the superuser password.
            pg.secret_values = Some("settings:\n  superuserPassword:\n    value: \"{password}\"\n");
            all.push(pg);
        } else {
            switched_off.push(("postgresql".into(), data_ns.into()));
        }
        if p.redis {
            all.push(component(
                config,
                "redis",
                data_ns,
                &v.redis,
                format!("service:\n  type: NodePort\n  nodePort: {}\n", p.node_ports.redis.port),
                vec![],
            ));
        } else {
            switched_off.push(("redis".into(), data_ns.into()));
        }
        let catalogue: Vec<String> = all.iter().map(|c| c.name.clone()).collect();
        for r in &p.releases {
            let mut spec = component(
                config,
                &r.name,
                &r.namespace,
                &r.chart,
                String::new(),
                catalogue.clone(),
            );
            for v in &r.values {
                let text = std::fs::read_to_string(config.dir.join(v)).unwrap_or_default();
                spec.values.push(ValuesSource {
                    display: v.clone(),
                    text,
                    path: Some(config.dir.join(v)),
                });
            }
            let mut parts = vec![spec.digest.as_str()];
            parts.extend(spec.values.iter().map(|v| v.text.as_str()));
            spec.digest = digest(&parts);
            all.push(spec);
        }

        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        for n in sel.only.iter().chain(&sel.skip) {
            if !names.contains(&n.as_str()) {
                let help = match crate::config::yaml::did_you_mean(n, &names) {
                    Some(b) => format!("did you mean `{b}`?"),
                    None => format!("the components of this environment are: {}", names.join(", ")),
                };
                return Err(Error::usage(
                    format!("there is no component `{n}` in this environment"),
                    help,
                ));
            }
        }
        let components: Vec<ComponentSpec> = all
            .into_iter()
            .filter(|c| sel.only.is_empty() || sel.only.contains(&c.name))
            .filter(|c| !sel.skip.contains(&c.name))
            .collect();

        let cluster_digest = match p.driver {
            Driver::Kind => digest(&[
                "kind",
                &v.kind_node_image,
                &config.kind_config_text,
                if persistent_data {
                    crate::config::kind::DATA_MOUNT
                } else {
                    ""
                },
            ]),
            Driver::Minikube => digest(&["minikube", &v.minikube_kubernetes]),
            Driver::Existing => digest(&["existing"]),
        };
        let mut probes = Vec::new();
        for (what, np) in config.endpoints() {
            if what == "https" {
                continue;
            }
            let enabled = match what {
                "http" => components
                    .iter()
                    .any(|c| c.name == "ingress-nginx" || c.name == "traefik"),
                other => components.iter().any(|c| c.name == other),
            };
            // Only kind maps NodePorts to this machine's ports (kind-config.yaml).
            if !enabled || p.driver != Driver::Kind {
                continue;
            }
            if let Some(m) = config.host_port(np.port) {
                let host = if m.listen_address == "0.0.0.0" {
                    "127.0.0.1".to_string()
                } else {
                    m.listen_address.clone()
                };
                let check = match what {
                    "http" => Check::Http {
                        host_header: format!("{}.devenv-smoke.localhost", p.name),
                    },
                    "postgresql" => Check::Postgres {
                        user: "postgres".into(),
                        database: "postgres".into(),
                    },
                    _ => Check::Redis,
                };
                probes.push(Probe {
                    name: what.to_string(),
                    host,
                    port: m.host_port,
                    check,
                });
            }
        }
        let in_cluster = components
            .iter()
            .filter_map(|c| match c.name.as_str() {
                "postgresql" => Some((format!("postgresql.{}.svc.cluster.local", c.namespace), 5432)),
                "redis" => Some((format!("redis.{}.svc.cluster.local", c.namespace), 6379)),
                _ => None,
            })
            .collect();
        let mut smoke_parts: Vec<&str> = vec![&cluster_digest, &v.echo_image, &v.probe_image];
        smoke_parts.extend(components.iter().map(|c| c.digest.as_str()));
        let smoke_digest = digest(&smoke_parts);
        Ok(Desired {
            name: p.name.clone(),
            driver: p.driver,
            cluster_digest,
            components,
            switched_off,
            images: p.images.clone(),
            smoke: !sel.no_test,
            probes,
            in_cluster,
            echo_image: v.echo_image.clone(),
            probe_image: v.probe_image.clone(),
            persistent_data,
            volumes,
            smoke_digest,
        })
    }
}

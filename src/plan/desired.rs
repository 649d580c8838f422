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
    /// Values carrying generated passwords (`{password}` for PostgreSQL's, `{grafana_password}`),
    /// added at install time into a user-only file and kept out of the digest and of every message.
    pub secret_values: Option<&'static str>,
    /// A project release: installed after the local images are loaded.
    pub uses_images: bool,
    /// Workloads an operator of the release creates once it runs, waited for after the release:
    /// (what to call them, label selector in the release's namespace).
    pub also_ready: Vec<(&'static str, &'static str)>,
}

/// The shared data volume: a directory on this machine, mounted into every node, offered as a
/// ReadWriteMany claim.
#[derive(Debug, Clone)]
pub struct SharedSpec {
    pub volume: crate::world::VolumeSpec,
    /// `sharedData.path`; None: the state directory's `data/shared`.
    pub host_dir: Option<std::path::PathBuf>,
    /// The node path that must be mounted for the volume to reach the host directory.
    pub mount: &'static str,
    /// Of everything the volume is made of; recorded in the cluster when created.
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct Desired {
    pub name: String,
    /// What the user should know about the configuration itself (the plan shows them).
    pub notes: Vec<String>,
    pub driver: Driver,
    pub cluster_digest: String,
    pub components: Vec<ComponentSpec>,
    /// Catalogue components switched off: (release, namespace, why); removed if devenv installed them.
    pub switched_off: Vec<(String, String, String)>,
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
    /// The node paths the cluster is created with (extraMounts devenv adds), in order: the state
    /// directory's `data/` at `/devenv-data`, a `sharedData.path` at `/devenv-shared`.
    pub mounts: Vec<&'static str>,
    /// The shared data volume, when switched on (and not left out by --only/--skip).
    pub shared: Option<SharedSpec>,
    /// Why the shared data volume is off, when it is: its volume is removed if devenv made it.
    pub shared_off: Option<String>,
    /// metrics-server is on: the smoke tests ask the metrics API for a node's usage.
    pub metrics_check: bool,
}

/// Which components a command acts on (`--only`, `--skip`, `--no-test`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub no_test: bool,
    /// Optional components switched on by `--with` (and remembered from earlier runs).
    pub with: Vec<String>,
    /// Optional components switched off by `--without` on this command line.
    pub without: Vec<String>,
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
        uses_images: false,
        also_ready: vec![],
    }
}

impl SharedSpec {
    /// What `up` records in the cluster for the volume it made: `<digest> <namespace>/<claim> <pv>`,
    /// so that switching it off later removes exactly that, whatever devenv.yaml says by then.
    pub fn record(&self) -> String {
        let v = &self.volume;
        format!("{} {}/{} {}", self.digest, v.namespace, v.claim, v.name)
    }

    /// Whether `record` is of this volume as the configuration now describes it.
    pub fn is_current(&self, record: Option<&str>) -> bool {
        record.is_some_and(|r| SharedRecord::parse(r).digest == self.digest)
    }
}

/// A shared-volume record read back ([`SharedSpec::record`]).
pub struct SharedRecord<'a> {
    pub digest: &'a str,
    pub namespace: &'a str,
    pub claim: &'a str,
    pub pv: &'a str,
}

impl<'a> SharedRecord<'a> {
    pub fn parse(record: &'a str) -> SharedRecord<'a> {
        let mut parts = record.split(' ');
        let digest = parts.next().unwrap_or("");
        let (namespace, claim) = parts.next().unwrap_or("").split_once('/').unwrap_or(("", ""));
        SharedRecord {
            digest,
            namespace,
            claim,
            pv: parts.next().unwrap_or(""),
        }
    }
}

/// Where the shared directory of `sharedData.path` is mounted in every node.
pub const SHARED_MOUNT: &str = "/devenv-shared";

impl Desired {
    pub fn from_config(config: &Config, sel: &Selection) -> Result<Desired> {
        let p = &config.project;
        let v = &config.versions;
        let mut all: Vec<ComponentSpec> = Vec::new();
        let mut switched_off = Vec::new();
        let (http, https) = (p.node_ports.http.port, p.node_ports.https.port);
        let not_ingress = "not the ingress devenv.yaml chooses".to_string();
        let on = optional_switches(config, sel)?;
        match p.ingress {
            Ingress::IngressNginx => {
                all.push(component(config, "ingress-nginx", "ingress-nginx", &v.ingress_nginx,
                    format!("controller:\n  service:\n    type: NodePort\n    nodePorts:\n      http: {http}\n      https: {https}\n"), vec![]));
                switched_off.push(("traefik".to_string(), "traefik".to_string(), not_ingress.clone()));
            }
            Ingress::Traefik => {
                all.push(component(config, "traefik", "traefik", &v.traefik,
                    format!("service:\n  type: NodePort\nports:\n  web:\n    nodePort: {http}\n  websecure:\n    nodePort: {https}\n"), vec![]));
                switched_off.push((
                    "ingress-nginx".to_string(),
                    "ingress-nginx".to_string(),
                    not_ingress.clone(),
                ));
            }
            Ingress::None => {
                switched_off.push((
                    "ingress-nginx".to_string(),
                    "ingress-nginx".to_string(),
                    not_ingress.clone(),
                ));
                switched_off.push(("traefik".to_string(), "traefik".to_string(), not_ingress.clone()));
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
                    access: crate::world::Access::ReadWriteOnce,
                });
            }
            // groundhog2k/postgres: the superuser password.
            pg.secret_values = Some("settings:\n  superuserPassword:\n    value: \"{password}\"\n");
            all.push(pg);
        } else {
            switched_off.push((
                "postgresql".into(),
                data_ns.into(),
                "switched off in devenv.yaml".into(),
            ));
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
            switched_off.push(("redis".into(), data_ns.into(), "switched off in devenv.yaml".into()));
        }
        let catalogue: Vec<String> = all.iter().map(|c| c.name.clone()).collect();
        let ingress_name = match p.ingress {
            Ingress::IngressNginx => Some(("ingress-nginx", "nginx")),
            Ingress::Traefik => Some(("traefik", "traefik")),
            Ingress::None => None,
        };
        // Grafana and Prometheus, unless helm-values/monitoring.yaml switches one off (`enabled: false`).
        let monitoring_apps: Vec<&str> = {
            let values: serde_json::Value = config
                .helm_values
                .get("monitoring")
                .and_then(|t| serde_saphyr::from_str(t).ok())
                .unwrap_or_default();
            ["grafana", "prometheus"]
                .into_iter()
                .filter(|app| values[app]["enabled"] != serde_json::Value::Bool(false))
                .collect()
        };
        match &on["monitoring"] {
            Ok(()) => {
                let mut generated = String::new();
                if let Some((_, class)) = ingress_name {
                    for app in monitoring_apps.iter() {
                        generated.push_str(&format!(
                            "{app}:\n  ingress:\n    enabled: true\n    ingressClassName: {class}\n    hosts:\n      - {app}.{}.localhost\n",
                            p.name
                        ));
                    }
                }
                // The controller's admission webhook must answer before the chart's Ingresses are created.
                let after = ingress_name.map(|(n, _)| vec![n.to_string()]).unwrap_or_default();
                let mut m = component(config, "monitoring", "monitoring", &v.monitoring, generated, after);
                // The operator makes Prometheus's StatefulSet (with labels of its own) once it runs.
                m.also_ready = Vec::from_iter(monitoring_apps.contains(&"prometheus").then_some((
                    "prometheus",
                    "app.kubernetes.io/name=prometheus,app.kubernetes.io/managed-by=prometheus-operator",
                )));
                m.secret_values = Some("grafana:\n  adminUser: admin\n  adminPassword: \"{grafana_password}\"\n");
                all.push(m);
            }
            Err(why) => switched_off.push(("monitoring".into(), "monitoring".into(), why.clone())),
        }
        match &on["metrics-server"] {
            Ok(()) => {
                // kind's and minikube's kubelets serve self-signed certificates.
                let generated = match p.driver {
                    Driver::Kind | Driver::Minikube => "args:\n  - --kubelet-insecure-tls\n".to_string(),
                    Driver::Existing => String::new(),
                };
                all.push(component(
                    config,
                    "metrics-server",
                    "kube-system",
                    &v.metrics_server,
                    generated,
                    vec![],
                ));
            }
            Err(why) => switched_off.push(("metrics-server".into(), "kube-system".into(), why.clone())),
        }
        for r in &p.releases {
            let mut spec = component(
                config,
                &r.name,
                &r.namespace,
                &r.chart,
                String::new(),
                catalogue.clone(),
            );
            spec.uses_images = true;
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

        let mut names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        if on["shared-data"].is_ok() {
            names.push("shared-data");
        }
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

        let selected =
            |n: &str| (sel.only.is_empty() || sel.only.iter().any(|x| x == n)) && !sel.skip.iter().any(|x| x == n);
        let (shared, shared_off) = match &on["shared-data"] {
            Ok(()) if p.driver != Driver::Kind => {
                return Err(Error::usage(
                    "shared-data mounts a directory of this machine into the nodes, which only the kind driver does",
                    "drop shared-data (`--without shared-data`, or `sharedData.enabled: false`), or use --driver kind",
                ));
            }
            Ok(()) => {
                let sd = &p.shared;
                let (mount, node_path) = match &sd.path {
                    Some(_) => (SHARED_MOUNT, SHARED_MOUNT.to_string()),
                    None => (
                        crate::config::kind::DATA_MOUNT,
                        format!("{}/shared", crate::config::kind::DATA_MOUNT),
                    ),
                };
                let volume = crate::world::VolumeSpec {
                    component: "shared-data".into(),
                    name: format!("devenv-{}-shared-data", p.name),
                    namespace: sd.namespace.clone(),
                    claim: sd.claim.clone(),
                    node_path,
                    size: sd.size.clone(),
                    access: crate::world::Access::ReadWriteMany,
                };
                let host = sd.path.as_ref().map(|x| x.display().to_string()).unwrap_or_default();
                let d = digest(&[
                    &volume.name,
                    &volume.namespace,
                    &volume.claim,
                    &volume.node_path,
                    &volume.size,
                    &host,
                ]);
                let spec = SharedSpec {
                    volume,
                    host_dir: sd.path.clone(),
                    mount,
                    digest: d,
                };
                (selected("shared-data").then_some(spec), None)
            }
            Err(why) => (None, Some(why.clone())),
        };
        // The mounts are part of the cluster: the data directory (PostgreSQL's data, the default
        // shared directory) and a user's shared directory.
        let shared_cfg = on["shared-data"].is_ok();
        let data_mount = p.driver == Driver::Kind && (persistent_data || (shared_cfg && p.shared.path.is_none()));
        let mut mounts = Vec::new();
        if data_mount {
            mounts.push(crate::config::kind::DATA_MOUNT);
        }
        let user_shared = if shared_cfg { p.shared.path.as_ref() } else { None };
        if user_shared.is_some() {
            mounts.push(SHARED_MOUNT);
        }
        let user_shared_text = user_shared.map(|x| x.display().to_string()).unwrap_or_default();
        let cluster_digest = match p.driver {
            Driver::Kind => {
                let data = if data_mount {
                    crate::config::kind::DATA_MOUNT
                } else {
                    ""
                };
                let mut parts = vec!["kind", &v.kind_node_image, &config.kind_config_text, data];
                // Only when there is one, so that clusters made before it keep their digest.
                if user_shared.is_some() {
                    parts.extend([SHARED_MOUNT, user_shared_text.as_str()]);
                }
                digest(&parts)
            }
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
                    host: host.clone(),
                    port: m.host_port,
                    check,
                });
                // Grafana and Prometheus answer through the same ingress, on their own hosts.
                if what == "http" && components.iter().any(|c| c.name == "monitoring") {
                    let checks = [
                        (
                            "prometheus",
                            Check::Prometheus {
                                host_header: format!("prometheus.{}.localhost", p.name),
                            },
                        ),
                        (
                            "grafana",
                            Check::Grafana {
                                host_header: format!("grafana.{}.localhost", p.name),
                            },
                        ),
                    ];
                    for (name, check) in checks.into_iter().filter(|(n, _)| monitoring_apps.contains(n)) {
                        probes.push(Probe {
                            name: name.into(),
                            host: host.clone(),
                            port: m.host_port,
                            check,
                        });
                    }
                }
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
        if let Some(sh) = &shared {
            smoke_parts.push(&sh.digest);
        }
        let smoke_digest = digest(&smoke_parts);
        let metrics_check = components.iter().any(|c| c.name == "metrics-server");
        let mut notes = Vec::new();
        if components.iter().any(|c| c.name == "monitoring")
            && monitoring_apps.contains(&"grafana")
            && !probes.iter().any(|p| p.name == "grafana")
        {
            notes.push(format!(
                "Grafana and Prometheus are not reachable from this machine through an ingress here ({}): use `kubectl -n monitoring port-forward svc/monitoring-grafana 3000:80` (with `eval \"$(devenv env)\"`)",
                if p.ingress == Ingress::None { "`ingress: none`".to_string() } else { format!("the {} driver maps no host ports", p.driver.as_str()) }
            ));
        }
        Ok(Desired {
            notes,
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
            mounts,
            shared,
            shared_off,
            metrics_check,
        })
    }
}

/// Each optional component: Ok when it is on, else why it is off. On when devenv.yaml says
/// `enabled: true` or `--with` (now or remembered) asks for it; `--without` turns off what only
/// `--with` turned on, and contradicting devenv.yaml is a usage error.
fn optional_switches(
    config: &Config,
    sel: &Selection,
) -> Result<std::collections::BTreeMap<&'static str, std::result::Result<(), String>>> {
    let p = &config.project;
    for n in sel.with.iter().chain(&sel.without) {
        if !crate::config::project::OPTIONAL.contains(&n.as_str()) {
            let help = match crate::config::yaml::did_you_mean(n, crate::config::project::OPTIONAL) {
                Some(b) => format!("did you mean `{b}`?"),
                None => format!(
                    "the optional components are: {}",
                    crate::config::project::OPTIONAL.join(", ")
                ),
            };
            return Err(Error::usage(format!("there is no optional component `{n}`"), help));
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for name in crate::config::project::OPTIONAL {
        let yaml = p.switched_on.get(name);
        let without = sel.without.iter().any(|x| x == name);
        let with = sel.with.iter().any(|x| x == name);
        let state = match (yaml, without) {
            (Some(s), true) => {
                return Err(Error::usage(
                    format!("--without {name} contradicts {s} (`enabled: true`)"),
                    format!("set `enabled: false` there to switch {name} off"),
                ));
            }
            (Some(_), false) => Ok(()),
            (None, true) => Err("switched off with --without".to_string()),
            (None, false) if with => Ok(()),
            (None, false) => Err("not switched on (devenv.yaml `enabled: true` or `up --with`)".to_string()),
        };
        out.insert(*name, state);
    }
    Ok(out)
}

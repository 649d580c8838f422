//! The desired environment, derived from the configuration alone (no I/O).

pub use crate::components::digest;
pub use crate::components::shared_data::{SHARED_MOUNT, SharedRecord, SharedSpec};
use crate::components::{self, Cx};
pub use crate::components::{ComponentSpec, ValuesSource};
use crate::config::{Config, Driver, Ingress};
use crate::error::{Error, Result};
use crate::world::Probe;

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
    /// The IngressClass of the environment's ingress controller, which the smoke Ingress names.
    pub ingress_class: Option<String>,
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
    /// The host image cache (kind, `imageCache`): every pinned image of the components and the
    /// smoke images, pulled once into this machine's engine and loaded into the nodes.
    pub cached_images: Vec<String>,
    /// Of `cached_images`, for devenv's record: the nodes were loaded with exactly these.
    pub cache_digest: String,
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

impl Desired {
    /// What deleting the cluster (`down`, `up --recreate`) keeps and what it loses: the one
    /// wording of it, used by the plan, `up`'s confirmation, `down` and the help of a change only
    /// a new volume claim takes. `data_dir`: the state directory's `data/`, when known.
    pub fn deletion_keeps(&self, data_dir: Option<&std::path::Path>) -> String {
        let mut kept = Vec::new();
        if self.persistent_data && self.components.iter().any(|c| c.name == components::postgresql::NAME) {
            kept.push("PostgreSQL's data");
        }
        if self
            .shared
            .as_ref()
            .is_some_and(|s| matches!(s.volume.host_dir, crate::world::HostDir::Data(_)))
        {
            kept.push("the shared files");
        }
        let has = |name: &str| self.components.iter().any(|c| c.name == name);
        let mut gone = Vec::new();
        if has(components::postgresql::NAME) && !self.persistent_data {
            gone.push("PostgreSQL's data");
        }
        if has(components::redis::NAME) {
            gone.push("Redis's data");
        }
        let lost = if gone.is_empty() {
            "everything in the cluster is lost".to_string()
        } else {
            format!("{} and everything else in the cluster is lost", gone.join(", "))
        };
        if kept.is_empty() {
            return lost;
        }
        let place = match data_dir {
            Some(d) => format!("in {}", d.display()),
            None => "on this machine, in devenv's state directory".to_string(),
        };
        format!("{} stay {place}; {lost}", kept.join(" and "))
    }

    pub fn from_config(config: &Config, sel: &Selection) -> Result<Desired> {
        let p = &config.project;
        let v = &config.versions;
        let cx = Cx { config };
        let mut all: Vec<ComponentSpec> = Vec::new();
        let mut switched_off = Vec::new();
        let not_ingress = "not the ingress devenv.yaml chooses".to_string();
        let on = optional_switches(config, sel)?;
        let nginx = (components::ingress_nginx::NAME, components::ingress_nginx::NAMESPACE);
        let traefik = (components::traefik::NAME, components::traefik::NAMESPACE);
        let ingress = match p.ingress {
            Ingress::IngressNginx => Some(components::ingress_nginx::spec(&cx)?),
            Ingress::Traefik => Some(components::traefik::spec(&cx)?),
            Ingress::None => None,
        };
        for (name, namespace) in [nginx, traefik] {
            if ingress.as_ref().is_none_or(|(c, _)| c.name != name) {
                switched_off.push((name.to_string(), namespace.to_string(), not_ingress.clone()));
            }
        }
        let route = ingress.as_ref().map(|(c, r)| (c.name.clone(), r.clone()));
        all.extend(ingress.map(|(c, _)| c));
        if p.postgresql {
            all.push(components::postgresql::spec(&cx)?);
        } else {
            switched_off.push((
                components::postgresql::NAME.into(),
                components::postgresql::NAMESPACE.into(),
                "switched off in devenv.yaml".into(),
            ));
        }
        if p.redis {
            all.push(components::redis::spec(&cx)?);
        } else {
            switched_off.push((
                components::redis::NAME.into(),
                components::redis::NAMESPACE.into(),
                "switched off in devenv.yaml".into(),
            ));
        }
        let catalogue: Vec<String> = all.iter().map(|c| c.name.clone()).collect();
        match &on[components::monitoring::NAME] {
            Ok(()) => all.push(components::monitoring::spec(
                &cx,
                route.as_ref().map(|(n, r)| (n.as_str(), r)),
            )?),
            Err(why) => switched_off.push((
                components::monitoring::NAME.into(),
                components::monitoring::NAMESPACE.into(),
                why.clone(),
            )),
        }
        match &on[components::metrics_server::NAME] {
            Ok(()) => all.push(components::metrics_server::spec(&cx)?),
            Err(why) => switched_off.push((
                components::metrics_server::NAME.into(),
                components::metrics_server::NAMESPACE.into(),
                why.clone(),
            )),
        }
        for r in &p.releases {
            all.push(components::release::spec(&cx, r, catalogue.clone())?);
        }

        let shared_on = on[components::shared_data::NAME].is_ok();
        let mut names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        if shared_on {
            names.push(components::shared_data::NAME);
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
        let selected =
            |n: &str| (sel.only.is_empty() || sel.only.iter().any(|x| x == n)) && !sel.skip.iter().any(|x| x == n);
        let components: Vec<ComponentSpec> = all.into_iter().filter(|c| selected(&c.name)).collect();

        let (shared, shared_off) = match &on[components::shared_data::NAME] {
            Ok(()) => {
                let spec = components::shared_data::spec(&cx)?;
                (selected(components::shared_data::NAME).then_some(spec), None)
            }
            Err(why) => (None, Some(why.clone())),
        };
        // The mounts are part of the cluster: the data directory (PostgreSQL's data, the default
        // shared directory) and a user's shared directory.
        let persistent_data = components::postgresql::persistent(&cx);
        let data_mount = p.driver == Driver::Kind && (persistent_data || (shared_on && p.shared.path.is_none()));
        let mut mounts = Vec::new();
        if data_mount {
            mounts.push(crate::config::kind::DATA_MOUNT);
        }
        let user_shared = if shared_on { p.shared.path.as_ref() } else { None };
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
        // The ingress's own check first, then each component's, in the catalogue's order.
        let probes: Vec<Probe> = components.iter().flat_map(|c| c.probes.clone()).collect();
        let in_cluster = components.iter().filter_map(|c| c.in_cluster.clone()).collect();
        let mut cached_images: Vec<String> = Vec::new();
        if p.driver == Driver::Kind && p.image_cache {
            for c in &components {
                for i in &c.chart.images {
                    if !cached_images.contains(i) {
                        cached_images.push(i.clone());
                    }
                }
            }
            // With or without --no-test: the record stays the same, and `devenv test` finds them.
            for i in [&v.echo_image, &v.probe_image] {
                if !cached_images.contains(i) {
                    cached_images.push(i.clone());
                }
            }
        }
        let mut smoke_parts: Vec<&str> = vec![&cluster_digest, &v.echo_image, &v.probe_image];
        smoke_parts.extend(components.iter().map(|c| c.digest.as_str()));
        if let Some(sh) = &shared {
            smoke_parts.push(&sh.digest);
        }
        let smoke_digest = digest(&smoke_parts);
        let metrics_check = components.iter().any(|c| c.metrics_api);
        let mut notes: Vec<String> = components.iter().flat_map(|c| c.notes.clone()).collect();
        notes.extend(
            config
                .exposed()
                .into_iter()
                .map(|(what, m)| Config::exposure_warning(what, m)),
        );
        let ingress_class = route
            .filter(|(n, _)| components.iter().any(|c| &c.name == n))
            .map(|(_, r)| r.class);
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
            cached_images: cached_images.clone(),
            cache_digest: digest(&cached_images.iter().map(String::as_str).collect::<Vec<_>>()),
            echo_image: v.echo_image.clone(),
            probe_image: v.probe_image.clone(),
            persistent_data,
            ingress_class,
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

//! The simulated world: clusters, nodes, releases, images and devenv's records, shared by every
//! test double, with per-operation latency, fault injection and a log of every call. Compiled only
//! with the `sim` feature, which `cargo test` and `cargo bench` turn on and a release build
//! (`cargo install`) does not have: no simulator ships in the product.
//!
//! In memory for in-process tests; with `DEVENV_SIMULATE=<file>` the state lives in a JSON file
//! (locked per operation) so that separate `devenv` processes — and a process killed mid-run —
//! see one world, the way they would see one Docker engine. Everything here is simulated: no
//! cluster, chart or container is involved.

pub mod charts;

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::world::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimCluster {
    pub nodes: Vec<NodeState>,
    /// Per node: image reference -> image ID, as containerd in the node has them.
    #[serde(default)]
    pub node_images: BTreeMap<String, BTreeMap<String, String>>,
    pub releases: Vec<ReleaseInfo>,
    /// devenv's record of each environment in the cluster (`kube-system/devenv-<env>`), by env.
    #[serde(default)]
    pub records: BTreeMap<String, BTreeMap<String, String>>,
    /// The node image and config it was created with.
    pub node_image: String,
    /// Namespaces devenv's smoke tests created, by name.
    #[serde(default)]
    pub namespaces: BTreeMap<String, SimNamespace>,
    /// The nodes' extraMounts from the kind config it was created with: (host path, node path).
    #[serde(default)]
    pub mounts: Vec<(String, String)>,
    /// `namespace/claim` -> node path of the hostPath volume bound to it.
    #[serde(default)]
    pub volumes: BTreeMap<String, String>,
    /// PostgreSQL rows kept on the cluster's own storage (gone with the cluster).
    #[serde(default)]
    pub db_rows: Vec<String>,
    /// What each release's chart made, as the chart models render it from the values helm got.
    #[serde(default)]
    pub rendered: BTreeMap<String, charts::Rendered>,
    /// The control-plane node's extraPortMappings: (containerPort, hostPort).
    #[serde(default)]
    pub ports: Vec<(u16, u16)>,
    /// `namespace/claim` -> the hostPath type of the volume bound to it.
    #[serde(default)]
    pub volume_types: BTreeMap<String, String>,
}

impl SimCluster {
    /// Environment `env`'s record in this cluster (empty when it has none).
    pub fn record(&self, env: &str) -> BTreeMap<String, String> {
        self.records.get(env).cloned().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimNamespace {
    pub env: String,
    pub owner: String,
    pub created: u64,
    /// The echo backend and its Ingress exist.
    pub echo: bool,
    /// The IngressClass the run's Ingress names.
    #[serde(default)]
    pub ingress_class: Option<String>,
}

/// A pod that cannot get ready, as the simulated cluster reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodProblem {
    /// The container's waiting reason: ImagePullBackOff, CrashLoopBackOff, …; or Unschedulable.
    pub reason: String,
    pub message: String,
    pub image: String,
    /// Last log lines, for a crashing container.
    #[serde(default)]
    pub log: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// Operation name, e.g. `cluster.create`, `helm.upgrade_install`, `probe`.
    pub op: String,
    /// Restricts the fault to one target (release name, probe name, cluster name).
    pub target: Option<String>,
    pub message: String,
    /// How many calls fail; 0 means every call.
    pub times: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Call {
    pub op: String,
    pub target: String,
    pub mutating: bool,
    /// Milliseconds since the Unix epoch, so that calls from several processes can be compared.
    pub start_ms: u128,
    pub end_ms: u128,
    /// Bytes sent (image transfers).
    #[serde(default)]
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimState {
    pub clusters: BTreeMap<String, SimCluster>,
    /// Latency in milliseconds per `op:target` (e.g. `helm.upgrade_install:postgresql`), else per
    /// operation; `default` applies to the rest.
    pub latency_ms: BTreeMap<String, u64>,
    pub faults: Vec<Fault>,
    pub calls: Vec<Call>,
    /// Images present on the host's container engine, by name.
    #[serde(default)]
    pub host_images: BTreeMap<String, SimImage>,
    /// Transfer speed into a node, bytes per millisecond; None is instant.
    #[serde(default)]
    pub bytes_per_ms: Option<u64>,
    #[serde(default)]
    pub host: SimHost,
    /// Release (or `echo`, `dns` for the smoke objects) -> why its pod does not get ready.
    #[serde(default)]
    pub pod_problems: BTreeMap<String, PodProblem>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimImage {
    pub id: String,
    pub size: u64,
}

/// The simulated machine: by default every tool is there, the engine answers, ports are free.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimHost {
    #[serde(default)]
    pub missing_tools: BTreeSet<String>,
    /// Versions to report; a tool not listed reports no version (accepted).
    #[serde(default)]
    pub tool_versions: BTreeMap<String, String>,
    /// Port -> who holds it.
    #[serde(default)]
    pub busy_ports: BTreeMap<u16, String>,
    /// No network: pulls fail as Docker's do offline.
    #[serde(default)]
    pub offline: bool,
    /// References no registry serves (a pull gets "manifest unknown").
    #[serde(default)]
    pub unpublished: std::collections::BTreeSet<String>,
    /// The next port `free_ports` hands out (the kernel does not hand one out twice in a row).
    #[serde(default)]
    pub next_free_port: u16,
    /// Set: the engine does not answer, with this message.
    #[serde(default)]
    pub engine_down: Option<String>,
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Free bytes everywhere; None means plenty.
    #[serde(default)]
    pub free_bytes: Option<u64>,
    /// This machine's own addresses.
    #[serde(default)]
    pub addresses: Vec<std::net::IpAddr>,
    /// Addresses of the containers the engine runs.
    #[serde(default)]
    pub container_addresses: Vec<std::net::IpAddr>,
    /// The API server URL every cluster's kubeconfig names; None: https://127.0.0.1:6443.
    #[serde(default)]
    pub api_server: Option<String>,
    /// Environments whose kube context (`--driver existing`) points at another environment's
    /// cluster: environment -> cluster. Every other environment's context is its own cluster's.
    #[serde(default)]
    pub contexts: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct SimWorld {
    mem: Arc<Mutex<SimState>>,
    file: Option<PathBuf>,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl Default for SimWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl SimWorld {
    pub fn new() -> Self {
        SimWorld {
            mem: Arc::new(Mutex::new(SimState::default())),
            file: None,
        }
    }

    /// A world kept in `path` (created empty if missing).
    pub fn open(path: &Path) -> Result<Self> {
        let w = SimWorld {
            mem: Arc::new(Mutex::new(SimState::default())),
            file: Some(path.to_path_buf()),
        };
        if !path.exists() {
            Self::save(path, &SimState::default())?;
        }
        Self::load(path)?;
        Ok(w)
    }

    fn load(path: &Path) -> Result<SimState> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::failed(format!("cannot read the simulated world {}: {e}", path.display()), ""))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::failed(format!("the simulated world {} is not valid: {e}", path.display()), ""))
    }

    fn save(path: &Path, s: &SimState) -> Result<()> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let text = serde_json::to_string_pretty(s).expect("state serializes");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Error::failed(format!("cannot write the simulated world: {e}"), ""))
    }

    /// Runs `f` on the state, atomically: under the in-process lock and, for a world kept in a
    /// file, under a file lock that also excludes other processes.
    pub fn with<T>(&self, f: impl FnOnce(&mut SimState) -> T) -> Result<T> {
        let mut guard = self.mem.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = &self.file else {
            return Ok(f(&mut guard));
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_extension("lock"))
            .map_err(|e| Error::failed(e.to_string(), ""))?;
        lock.lock().map_err(|e| Error::failed(e.to_string(), ""))?;
        let mut s = Self::load(path)?;
        let out = f(&mut s);
        Self::save(path, &s)?;
        Ok(out)
    }

    pub fn state(&self) -> SimState {
        self.with(|s| s.clone()).expect("readable simulated world")
    }

    pub fn set_latency(&self, op: &str, ms: u64) {
        self.with(|s| s.latency_ms.insert(op.to_string(), ms)).expect("world");
    }

    pub fn inject(&self, op: &str, target: Option<&str>, message: &str, times: u32) {
        self.with(|s| {
            s.faults.push(Fault {
                op: op.into(),
                target: target.map(Into::into),
                message: message.into(),
                times,
            })
        })
        .expect("world");
    }

    /// The host ports every simulated cluster's control-plane node publishes (as Docker keeps
    /// them whether the node runs or not).
    fn all_published(s: &SimState) -> Vec<crate::world::Published> {
        s.clusters
            .iter()
            .flat_map(|(name, c)| {
                c.ports.iter().map(move |(cp, hp)| crate::world::Published {
                    container: format!("{name}-control-plane"),
                    owner: name.clone(),
                    host_ip: "127.0.0.1".into(),
                    host_port: *hp,
                    container_port: *cp,
                })
            })
            .collect()
    }

    /// The first node's extraMounts in the kind config kind would be given.
    fn mounts_of(config: &Path) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(config).unwrap_or_default();
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_default();
        v.pointer("/nodes/0/extraMounts")
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((
                    m["hostPath"].as_str()?.to_string(),
                    m["containerPath"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// The control-plane node's extraPortMappings in the kind config kind would be given.
    fn ports_of(config: &Path) -> Vec<(u16, u16)> {
        let text = std::fs::read_to_string(config).unwrap_or_default();
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_default();
        v.pointer("/nodes/0/extraPortMappings")
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((
                    u16::try_from(m["containerPort"].as_u64()?).ok()?,
                    u16::try_from(m["hostPort"].as_u64()?).ok()?,
                ))
            })
            .collect()
    }

    /// The values helm would give the chart: each file in order, merged; within one file a key
    /// given twice keeps its last value, as helm's YAML reader does.
    fn values_of(files: &[PathBuf]) -> Result<serde_json::Value> {
        let mut merged = serde_json::json!({});
        for f in files {
            let text = std::fs::read_to_string(f)
                .map_err(|e| Error::failed(format!("Error: open {}: {e} (simulated helm)", f.display()), ""))?;
            if crate::config::yaml::is_blank(&text) {
                continue;
            }
            let mut options = serde_saphyr::Options::default();
            options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
            let v: serde_json::Value = serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
                Error::failed(
                    format!("Error: failed to parse {}: {e} (simulated helm)", f.display()),
                    "",
                )
            })?;
            crate::components::values::merge(&mut merged, v);
        }
        Ok(merged)
    }

    /// The file on this machine that `file` on claim `namespace/claim` is, when the claim is bound
    /// to a volume under a directory mounted into the nodes; None: the cluster's own storage.
    fn claim_file(cl: &SimCluster, claim: &str, file: &str) -> Option<PathBuf> {
        let node_path = cl.volumes.get(claim)?;
        cl.mounts.iter().find_map(|(host, inside)| {
            node_path
                .strip_prefix(inside.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                .map(|rest| Path::new(host).join(rest.trim_start_matches('/')).join(file))
        })
    }

    /// Where PostgreSQL's rows live: a file in its PGDATA on its claim, when that is on this
    /// machine.
    fn db_file(cl: &SimCluster) -> Option<PathBuf> {
        Self::claim_file(cl, "devenv-data/postgresql-data", "pg/rows")
    }

    /// A file a pod wrote on claim `namespace/claim` of `cluster`, as this machine sees it.
    pub fn claim_read(&self, cluster: &str, claim: &str, file: &str) -> Option<String> {
        self.with(|s| {
            let cl = s.clusters.get(cluster)?;
            std::fs::read_to_string(Self::claim_file(cl, claim, file)?).ok()
        })
        .expect("world")
    }

    /// A pod of `cluster` writes `text` into `file` on claim `namespace/claim`.
    pub fn claim_write(&self, cluster: &str, claim: &str, file: &str, text: &str) {
        self.with(|s| {
            let cl = s.clusters.get(cluster).expect("cluster exists");
            let f = Self::claim_file(cl, claim, file).expect("the claim is on a mounted directory");
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        })
        .expect("world");
    }

    /// A row written into the simulated PostgreSQL of `cluster` (its release must be installed).
    pub fn db_write(&self, cluster: &str, row: &str) {
        self.with(|s| {
            let cl = s.clusters.get_mut(cluster).expect("cluster exists");
            assert!(
                cl.releases.iter().any(|r| r.name == "postgresql"),
                "postgresql is installed"
            );
            match Self::db_file(cl) {
                Some(f) => {
                    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                    let mut text = std::fs::read_to_string(&f).unwrap_or_default();
                    text.push_str(&format!("{row}\n"));
                    std::fs::write(&f, text).unwrap();
                }
                None => cl.db_rows.push(row.to_string()),
            }
        })
        .expect("world");
    }

    /// The rows the simulated PostgreSQL of `cluster` has.
    pub fn db_rows(&self, cluster: &str) -> Vec<String> {
        self.with(|s| {
            let Some(cl) = s.clusters.get(cluster) else {
                return vec![];
            };
            match Self::db_file(cl) {
                Some(f) => std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(String::from)
                    .collect(),
                None => cl.db_rows.clone(),
            }
        })
        .expect("world")
    }

    /// Makes the pods of `release` fail to get ready the way `problem` says.
    pub fn break_pods(&self, release: &str, problem: PodProblem) {
        self.with(|s| s.pod_problems.insert(release.to_string(), problem))
            .expect("world");
    }

    /// The objects the real API would show for a release whose pod has `p`.
    fn stuck_snapshot(release: &str, namespace: &str, p: &PodProblem) -> crate::readiness::Snapshot {
        let pod = format!("{release}-0");
        let status = if p.reason == "Unschedulable" {
            serde_json::json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": p.message}]})
        } else {
            serde_json::json!({"phase": if p.reason == "CrashLoopBackOff" {"Running"} else {"Pending"},
                "containerStatuses": [{"name": release, "image": p.image, "imageID": "", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": p.reason, "message": p.message}}}]})
        };
        fn v<T: serde::de::DeserializeOwned>(j: serde_json::Value) -> T {
            serde_json::from_value(j).expect("valid simulated object")
        }
        let mut logs = BTreeMap::new();
        if !p.log.is_empty() {
            logs.insert(format!("{pod}/{release}"), p.log.clone());
        }
        crate::readiness::Snapshot {
            statefulsets: vec![v(serde_json::json!({
                "metadata": {"name": release, "namespace": namespace, "generation": 1},
                "spec": {"replicas": 1, "selector": {}, "serviceName": release, "template": {}},
                "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 0}}))],
            pods: vec![v(serde_json::json!({
                "metadata": {"name": pod, "namespace": namespace},
                "spec": {"containers": [{"name": release, "image": p.image}]},
                "status": status}))],
            events: vec![v(serde_json::json!({
                "metadata": {"name": format!("{pod}.1")}, "type": "Warning",
                "reason": if p.reason.contains("ImagePull") {"Failed"} else if p.reason == "Unschedulable" {"FailedScheduling"} else {"BackOff"},
                "message": p.message, "involvedObject": {"kind": "Pod", "name": pod}}))],
            logs,
            ..Default::default()
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls
    }

    pub fn world(&self) -> World {
        World {
            images: Arc::new(self.clone()),
            host: Arc::new(self.clone()),
            engine: Arc::new(self.clone()),
            cluster: Arc::new(self.clone()),
            helm: Arc::new(self.clone()),
            kube: Arc::new(self.clone()),
            prober: Arc::new(self.clone()),
        }
    }

    /// Records a call, waits out its latency (unless cancelled), checks faults, then applies `f`.
    fn op<T>(
        &self,
        op: &str,
        target: &str,
        mutating: bool,
        cancel: &Cancel,
        before: impl FnOnce(&mut SimState),
        f: impl FnOnce(&mut SimState) -> Result<T>,
    ) -> Result<T> {
        let start = now_ms();
        let latency = self.with(|s| {
            before(s);
            s.latency_ms
                .get(&format!("{op}:{target}"))
                .or_else(|| s.latency_ms.get(op))
                .or_else(|| s.latency_ms.get("default"))
                .copied()
                .unwrap_or(0)
        })?;
        let completed = latency == 0 || cancel.sleep(Duration::from_millis(latency));
        self.with(|s| {
            let fault = s
                .faults
                .iter_mut()
                .find(|fa| fa.op == op && fa.target.as_deref().is_none_or(|t| t == target));
            let outcome = if !completed {
                Err(cancel.error())
            } else if let Some(fa) = fault {
                let msg = fa.message.clone();
                if fa.times == 1 {
                    let m = fa.message.clone();
                    s.faults.retain(|x| !(x.op == op && x.message == m));
                } else if fa.times > 1 {
                    fa.times -= 1;
                }
                Err(Error::failed(msg, "(simulated fault)"))
            } else {
                f(s)
            };
            s.calls.push(Call {
                op: op.into(),
                target: target.into(),
                mutating,
                start_ms: start,
                end_ms: now_ms(),
                bytes: 0,
            });
            outcome
        })?
    }

    fn cluster_mut<'s>(s: &'s mut SimState, name: &str) -> Result<&'s mut SimCluster> {
        s.clusters.get_mut(name).ok_or_else(|| {
            Error::failed(
                format!("cluster `{name}` does not exist (simulated)"),
                "run `devenv up`",
            )
        })
    }

    fn target_cluster(target: &KubeTarget) -> String {
        target.context.trim_start_matches("kind-").to_string()
    }
}

impl ClusterProvider for SimWorld {
    fn observe(&self, name: &str, cancel: &Cancel) -> Result<ClusterState> {
        self.op(
            "cluster.observe",
            name,
            false,
            cancel,
            |_| {},
            |s| {
                let name = s.host.contexts.get(name).map(String::as_str).unwrap_or(name);
                Ok(match s.clusters.get(name) {
                    None => ClusterState::Absent,
                    Some(c) => ClusterState::Present { nodes: c.nodes.clone() },
                })
            },
        )
    }

    fn create(&self, spec: &ClusterSpec, cancel: &Cancel) -> Result<()> {
        let name = spec.name.clone();
        self.op(
            "cluster.create",
            &spec.name,
            true,
            cancel,
            |_| {},
            |s| {
                if s.clusters.contains_key(&name) {
                    return Err(Error::failed(
                        format!("node(s) already exist for a cluster with the name \"{name}\" (simulated)"),
                        "",
                    ));
                }
                // As Docker refuses a second publish of a host port (in kind's words).
                let ports = Self::ports_of(&spec.config_path);
                let held = Self::all_published(s);
                if let Some((_, hp)) = ports
                    .iter()
                    .find(|(_, hp)| held.iter().any(|p| p.host_port == *hp) || s.host.busy_ports.contains_key(hp))
                {
                    return Err(Error::failed(
                        format!("ERROR: failed to create cluster: command \"docker run --name {name}-control-plane …\" failed with error: exit status 125\nCommand Output: docker: Error response from daemon: driver failed programming external connectivity on endpoint {name}-control-plane: Bind for 127.0.0.1:{hp} failed: port is already allocated. (simulated)"),
                        "",
                    ));
                }
                s.clusters.insert(
                    name.clone(),
                    SimCluster {
                        nodes: vec![NodeState {
                            name: format!("{name}-control-plane"),
                            role: "control-plane".into(),
                            running: true,
                        }],
                        node_image: spec.node_image.clone(),
                        mounts: Self::mounts_of(&spec.config_path),
                        ports,
                        ..Default::default()
                    },
                );
                Ok(())
            },
        )
    }

    fn delete(&self, name: &str, cancel: &Cancel) -> Result<()> {
        self.op(
            "cluster.delete",
            name,
            true,
            cancel,
            |_| {},
            |s| {
                s.clusters.remove(name);
                Ok(())
            },
        )
    }

    fn start(&self, name: &str, cancel: &Cancel) -> Result<()> {
        self.op(
            "cluster.start",
            name,
            true,
            cancel,
            |_| {},
            |s| {
                for n in &mut Self::cluster_mut(s, name)?.nodes {
                    n.running = true;
                }
                Ok(())
            },
        )
    }

    fn stop(&self, name: &str, cancel: &Cancel) -> Result<()> {
        self.op(
            "cluster.stop",
            name,
            true,
            cancel,
            |_| {},
            |s| {
                for n in &mut Self::cluster_mut(s, name)?.nodes {
                    n.running = false;
                }
                Ok(())
            },
        )
    }

    fn kubeconfig(&self, name: &str, cancel: &Cancel) -> Result<String> {
        self.op("cluster.kubeconfig", name, false, cancel, |_| {}, |s| {
            let name = &s.host.contexts.get(name).cloned().unwrap_or_else(|| name.to_string());
            // kind's words for node containers without a control plane (a create cut short).
            if !Self::cluster_mut(s, name)?.nodes.iter().any(|n| n.role == "control-plane") {
                return Err(Error::failed(
                    format!("ERROR: could not locate any control plane nodes for cluster named '{name}'. Use the --name option to select a different cluster (simulated)"),
                    "",
                ));
            }
            let server = s.host.api_server.clone().unwrap_or_else(|| "https://127.0.0.1:6443".into());
            Ok(format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {server}\n  name: kind-{name}\ncontexts:\n- context:\n    cluster: kind-{name}\n    user: kind-{name}\n  name: kind-{name}\ncurrent-context: kind-{name}\nusers:\n- name: kind-{name}\n  user: {{}}\n"
            ))
        })
    }

    fn context(&self, name: &str) -> String {
        let contexts = self.state().host.contexts;
        format!("kind-{}", contexts.get(name).map(String::as_str).unwrap_or(name))
    }

    fn list(&self, cancel: &Cancel) -> Result<Vec<String>> {
        self.op(
            "cluster.list",
            "",
            false,
            cancel,
            |_| {},
            |s| Ok(s.clusters.keys().cloned().collect()),
        )
    }

    fn load_images(
        &self,
        name: &str,
        images: &[String],
        progress: &(dyn Fn(&str, u64) + Sync),
        cancel: &Cancel,
    ) -> Result<crate::world::LoadReport> {
        crate::images::load(self, self, name, images, false, progress, cancel)
    }
}

impl ContainerEngine for SimWorld {
    fn containers_labelled(&self, label: &str, value: &str, cancel: &Cancel) -> Result<Vec<NodeState>> {
        self.op(
            "engine.containers",
            value,
            false,
            cancel,
            |_| {},
            |s| {
                Ok(match (label, s.clusters.get(value)) {
                    ("io.x-k8s.kind.cluster", Some(c)) => c.nodes.clone(),
                    _ => vec![],
                })
            },
        )
    }

    fn remove(&self, names: &[String], cancel: &Cancel) -> Result<()> {
        self.op(
            "engine.remove",
            &names.join(","),
            true,
            cancel,
            |_| {},
            |s| {
                for c in s.clusters.values_mut() {
                    c.nodes.retain(|n| !names.contains(&n.name));
                }
                s.clusters.retain(|_, c| !c.nodes.is_empty());
                Ok(())
            },
        )
    }

    fn addresses(&self, cancel: &Cancel) -> Result<Vec<std::net::IpAddr>> {
        self.op(
            "engine.addresses",
            "",
            false,
            cancel,
            |_| {},
            |s| Ok(s.host.container_addresses.clone()),
        )
    }

    fn stop(&self, names: &[String], cancel: &Cancel) -> Result<()> {
        self.op(
            "engine.stop",
            &names.join(","),
            true,
            cancel,
            |_| {},
            |s| {
                for c in s.clusters.values_mut() {
                    for n in c.nodes.iter_mut().filter(|n| names.contains(&n.name)) {
                        n.running = false;
                    }
                }
                Ok(())
            },
        )
    }

    fn published(&self, label: &str, cancel: &Cancel) -> Result<Vec<crate::world::Published>> {
        self.op(
            "engine.published",
            label,
            false,
            cancel,
            |_| {},
            |s| {
                Ok(if label == "io.x-k8s.kind.cluster" {
                    Self::all_published(s)
                } else {
                    vec![]
                })
            },
        )
    }

    /// Only what devenv runs: `rm -rf -- PATH…` as root over mounted directories, done on the
    /// real directories of this machine.
    fn run(&self, spec: &RunSpec, cancel: &Cancel) -> Result<()> {
        self.op(
            "engine.run",
            &spec.image,
            true,
            cancel,
            |_| {},
            |s| {
                if !s.host_images.contains_key(&spec.image) {
                    return Err(Error::failed(
                        format!("Unable to find image '{}' locally (simulated)", spec.image),
                        "",
                    ));
                }
                let paths = match (spec.entrypoint.as_str(), spec.args.as_slice()) {
                    ("rm", [rf, dash, paths @ ..]) if rf == "-rf" && dash == "--" => paths,
                    _ => return Err(Error::failed(format!("the simulated engine does not run {spec:?}"), "")),
                };
                for p in paths {
                    let host = spec.mounts.iter().find_map(|(h, inside)| {
                        p.strip_prefix(inside.as_str())
                            .map(|rest| h.join(rest.trim_start_matches('/')))
                    });
                    let Some(host) = host else {
                        return Err(Error::failed(format!("rm: {p}: not on a mount (simulated)"), ""));
                    };
                    match std::fs::remove_dir_all(&host) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(Error::failed(format!("rm: can't remove '{p}': {e} (simulated)"), ""));
                        }
                        _ => {}
                    }
                }
                Ok(())
            },
        )
    }

    fn start(&self, names: &[String], cancel: &Cancel) -> Result<()> {
        self.op(
            "engine.start",
            &names.join(","),
            true,
            cancel,
            |_| {},
            |s| {
                for c in s.clusters.values_mut() {
                    for n in c.nodes.iter_mut().filter(|n| names.contains(&n.name)) {
                        n.running = true;
                    }
                }
                Ok(())
            },
        )
    }
}

impl Helm for SimWorld {
    fn list(&self, target: &KubeTarget, cancel: &Cancel) -> Result<Vec<ReleaseInfo>> {
        let c = Self::target_cluster(target);
        self.op(
            "helm.list",
            &c,
            false,
            cancel,
            |_| {},
            |s| Ok(Self::cluster_mut(s, &c)?.releases.clone()),
        )
    }

    fn upgrade_install(&self, target: &KubeTarget, spec: &InstallSpec, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        let chart = format!(
            "{}-{}",
            spec.chart.rsplit('/').next().unwrap_or(&spec.chart),
            spec.version.clone().unwrap_or_else(|| "0.0.0".into())
        );
        let rel = spec.release.clone();
        let ns = spec.namespace.clone();
        // What the chart makes from exactly the files helm is given (a chart with no model makes
        // one Deployment labelled as the release's).
        let values = Self::values_of(&spec.values_files)?;
        let rendered = charts::render(&spec.chart, &rel, &ns, &values).unwrap_or_else(|| charts::Rendered {
            workloads: vec![charts::Workload {
                kind: "Deployment".into(),
                name: rel.clone(),
                namespace: ns.clone(),
                instance: rel.clone(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let (c2, rel2, ns2, chart2) = (c.clone(), rel.clone(), ns.clone(), chart.clone());
        // Like helm, the release is recorded as pending before the wait; an interrupt leaves it so.
        self.op(
            "helm.upgrade_install",
            &spec.release,
            true,
            cancel,
            move |s| {
                if let Some(cl) = s.clusters.get_mut(&c2) {
                    match cl.releases.iter_mut().find(|r| r.name == rel2 && r.namespace == ns2) {
                        Some(r) => r.status = "pending-upgrade".into(),
                        None => cl.releases.push(ReleaseInfo {
                            name: rel2,
                            namespace: ns2,
                            status: "pending-install".into(),
                            chart: chart2,
                        }),
                    }
                }
            },
            |s| {
                let cl = Self::cluster_mut(s, &c)?;
                if let Some(r) = cl.releases.iter_mut().find(|r| r.name == rel && r.namespace == ns) {
                    r.status = "deployed".into();
                    r.chart = chart;
                }
                cl.rendered.insert(rel.clone(), rendered);
                Ok(())
            },
        )
        .inspect_err(|e| {
            // A failed (not interrupted) helm --atomic/--rollback-on-failure leaves `failed`.
            if !matches!(e, Error::Interrupted(_)) && !cancel.is_cancelled() {
                let _ = self.with(|s| {
                    if let Some(cl) = s.clusters.get_mut(&Self::target_cluster(target))
                        && let Some(r) = cl.releases.iter_mut().find(|r| r.name == spec.release)
                    {
                        r.status = "failed".into();
                    }
                });
            }
        })
    }

    fn uninstall(&self, target: &KubeTarget, release: &str, namespace: &str, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op(
            "helm.uninstall",
            release,
            true,
            cancel,
            |_| {},
            |s| {
                let cl = Self::cluster_mut(s, &c)?;
                cl.releases.retain(|r| !(r.name == release && r.namespace == namespace));
                cl.rendered.remove(release);
                Ok(())
            },
        )
    }

    fn recover(&self, target: &KubeTarget, release: &ReleaseInfo, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op(
            "helm.recover",
            &release.name,
            true,
            cancel,
            |_| {},
            |s| {
                let cl = Self::cluster_mut(s, &c)?;
                if release.status == "pending-install" || release.status == "uninstalling" {
                    cl.releases
                        .retain(|r| !(r.name == release.name && r.namespace == release.namespace));
                    cl.rendered.remove(&release.name);
                } else if let Some(r) = cl.releases.iter_mut().find(|r| r.name == release.name) {
                    r.status = "deployed".into();
                }
                Ok(())
            },
        )
    }
}

impl Kube for SimWorld {
    fn server_version(&self, target: &KubeTarget, cancel: &Cancel) -> Result<String> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.server_version",
            &c,
            false,
            cancel,
            |_| {},
            |s| {
                let image = &Self::cluster_mut(s, &c)?.node_image;
                Ok(image
                    .split(['@'])
                    .next()
                    .and_then(|i| i.rsplit(':').next())
                    .unwrap_or("unknown")
                    .to_string())
            },
        )
    }
    fn wait_nodes_ready(&self, target: &KubeTarget, timeout: Duration, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.wait_nodes",
            &c,
            false,
            cancel,
            |_| {},
            |s| {
                let down: Vec<String> = Self::cluster_mut(s, &c)?
                    .nodes
                    .iter()
                    .filter(|n| !n.running)
                    .map(|n| n.name.clone())
                    .collect();
                if down.is_empty() {
                    Ok(())
                } else {
                    Err(Error::failed(
                        format!(
                            "node(s) {} not Ready after {}s (simulated)",
                            down.join(", "),
                            timeout.as_secs()
                        ),
                        "",
                    ))
                }
            },
        )
    }
    fn delete_applied(&self, target: &KubeTarget, env: &str, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.delete_applied",
            &c,
            true,
            cancel,
            |_| {},
            |s| {
                Self::cluster_mut(s, &c)?.records.remove(env);
                Ok(())
            },
        )
    }

    fn records(&self, target: &KubeTarget, cancel: &Cancel) -> Result<Vec<(String, Applied)>> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.get_applied",
            &c,
            false,
            cancel,
            |_| {},
            |s| {
                let cl = Self::cluster_mut(s, &c)?;
                Ok(cl
                    .records
                    .iter()
                    .filter(|(_, r)| !r.is_empty())
                    .map(|(env, r)| (env.clone(), Applied { entries: r.clone() }))
                    .collect())
            },
        )
    }

    fn wait_ready(&self, target: &KubeTarget, w: &Workloads, timeout: Duration, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        let (found, problem) = self.op(
            "kube.wait_ready",
            &w.what,
            false,
            cancel,
            |_| {},
            |s| {
                Self::cluster_mut(s, &c)?;
                let cl = &s.clusters[&c];
                let found = Self::workloads(cl)
                    .into_iter()
                    .filter(|(labels, wl)| wl.namespace == w.namespace && Self::selects(&w.selector, labels))
                    .map(|(_, wl)| wl)
                    .collect::<Vec<_>>();
                let problem = match found.is_empty() {
                    true => None,
                    false => s
                        .pod_problems
                        .get(&w.what)
                        .cloned()
                        .or_else(|| Self::kubelet(cl, &found)),
                };
                Ok((found.len(), problem))
            },
        )?;
        if found == 0 && w.require_some {
            // The real adapter polls until its deadline; so does this one.
            if !cancel.sleep(timeout) {
                return Err(cancel.error());
            }
            return Err(crate::readiness::nothing_labelled_error(w, timeout));
        }
        let Some(p) = problem else { return Ok(()) };
        if !cancel.sleep(timeout) {
            return Err(cancel.error());
        }
        Err(crate::readiness::not_ready_error(
            &w.what,
            &w.namespace,
            timeout,
            &Self::stuck_snapshot(&w.what, &w.namespace, &p),
        ))
    }

    fn create_smoke_namespace(&self, target: &KubeTarget, spec: &SmokeSpec, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);

        self.op(
            "kube.create_namespace",
            &spec.namespace,
            true,
            cancel,
            |_| {},
            |s| {
                let cl = Self::cluster_mut(s, &c)?;
                if cl.namespaces.contains_key(&spec.namespace) {
                    return Err(Error::failed(
                        format!("namespaces \"{}\" already exists (simulated)", spec.namespace),
                        "",
                    ));
                }
                cl.namespaces.insert(
                    spec.namespace.clone(),
                    SimNamespace {
                        env: spec.env.clone(),
                        owner: spec.owner.clone(),
                        created: spec.created,
                        echo: false,
                        ingress_class: None,
                    },
                );
                Ok(())
            },
        )
    }

    fn smoke_echo(&self, target: &KubeTarget, spec: &SmokeSpec, timeout: Duration, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.smoke_echo",
            &spec.namespace,
            true,
            cancel,
            |_| {},
            |s| {
                let ns = Self::cluster_mut(s, &c)?
                    .namespaces
                    .get_mut(&spec.namespace)
                    .ok_or_else(|| {
                        Error::failed(format!("namespaces \"{}\" not found (simulated)", spec.namespace), "")
                    })?;
                ns.echo = true;
                // The class the real adapter's Ingress names.
                let (_, _, _, ingress) = crate::adapters::kube::smoke_objects(spec);
                ns.ingress_class = ingress.spec.and_then(|s| s.ingress_class_name);
                Ok(())
            },
        )?;
        self.wait_problem("kube.wait_echo", &c, "echo", &spec.namespace, timeout, cancel)
    }

    fn smoke_job(
        &self,
        target: &KubeTarget,
        spec: &SmokeSpec,
        targets: &[(String, u16)],
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op("kube.smoke_job", &spec.namespace, true, cancel, |_| {}, |s| {
            let cl = Self::cluster_mut(s, &c)?;
            if !cl.namespaces.contains_key(&spec.namespace) {
                return Err(Error::failed(format!("namespaces \"{}\" not found (simulated)", spec.namespace), ""));
            }
            for (host, port) in targets {
                // `<service>.<namespace>.svc.cluster.local`: a Service some deployed release made.
                let mut parts = host.split('.');
                let (service, namespace) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let resolves = cl.rendered.iter().any(|(release, r)| {
                    cl.releases.iter().any(|x| &x.name == release && x.status == "deployed")
                        && r.services.iter().any(|s| s.name == service && s.namespace == namespace)
                });
                if !resolves {
                    return Err(Error::failed(
                        format!("the in-cluster DNS check (namespace {}) failed:\n  container connect-{service}: nc: {host}:{port}: bad address (simulated)", spec.namespace),
                        "the service does not resolve: is its release installed? `devenv status`",
                    ));
                }
            }
            Ok(())
        })?;
        self.wait_problem("kube.wait_job", &c, "dns", &spec.namespace, timeout, cancel)
    }

    fn smoke_namespaces(&self, target: &KubeTarget, env: &str, cancel: &Cancel) -> Result<Vec<SmokeNamespace>> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.list_namespaces",
            &c,
            false,
            cancel,
            |_| {},
            |s| {
                Ok(Self::cluster_mut(s, &c)?
                    .namespaces
                    .iter()
                    .filter(|(_, n)| n.env == env)
                    .map(|(name, n)| SmokeNamespace {
                        name: name.clone(),
                        owner: n.owner.clone(),
                        created: n.created,
                    })
                    .collect())
            },
        )
    }

    fn ensure_volume(&self, target: &KubeTarget, v: &VolumeSpec, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.ensure_volume",
            &v.name,
            true,
            cancel,
            |_| {},
            |s| {
                // The very objects the real adapter writes: the claim they bind, the node path and
                // hostPath type of the volume.
                let (_, pv, pvc) = crate::adapters::kube::volume_objects(v);
                let host = pv.spec.as_ref().and_then(|s| s.host_path.clone()).unwrap_or_default();
                let key = format!(
                    "{}/{}",
                    pvc.metadata.namespace.unwrap_or_default(),
                    pvc.metadata.name.unwrap_or_default()
                );
                let cl = Self::cluster_mut(s, &c)?;
                cl.volumes.insert(key.clone(), host.path);
                cl.volume_types.insert(key, host.type_.unwrap_or_default());
                Ok(())
            },
        )
    }

    fn delete_volume(
        &self,
        target: &KubeTarget,
        pv: &str,
        namespace: &str,
        claim: &str,
        cancel: &Cancel,
    ) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.delete_volume",
            pv,
            true,
            cancel,
            |_| {},
            |s| {
                Self::cluster_mut(s, &c)?
                    .volumes
                    .remove(&format!("{namespace}/{claim}"));
                Ok(())
            },
        )
    }

    fn helm_releases(&self, target: &KubeTarget, charts: bool, cancel: &Cancel) -> Result<Option<Vec<ReleaseInfo>>> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.helm_releases",
            &c,
            false,
            cancel,
            |_| {},
            |s| {
                let mut releases = Self::cluster_mut(s, &c)?.releases.clone();
                if !charts {
                    // As the real adapter's metadata-only read: no chart.
                    releases.iter_mut().for_each(|r| r.chart.clear());
                }
                Ok(Some(releases))
            },
        )
    }

    fn node_metrics(&self, target: &KubeTarget, _timeout: Duration, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op("kube.node_metrics", &c, false, cancel, |_| {}, |s| {
            let cl = Self::cluster_mut(s, &c)?;
            if cl.releases.iter().any(|r| r.name == "metrics-server" && r.status == "deployed") {
                Ok(())
            } else {
                Err(Error::failed(
                    "the metrics API (metrics.k8s.io/v1beta1) reported no node's usage: the server could not find the requested resource (simulated)",
                    "is metrics-server installed and ready? `devenv status`",
                ))
            }
        })
    }

    fn smoke_shared(
        &self,
        target: &KubeTarget,
        spec: &SmokeSpec,
        v: &VolumeSpec,
        _timeout: Duration,
        cancel: &Cancel,
    ) -> Result<()> {
        let c = Self::target_cluster(target);
        let claim = format!("{}/{}", v.namespace, v.claim);
        let file = format!(".devenv-smoke-{}", spec.token);
        let missing = |what: &str| {
            Error::failed(
                format!("the shared volume check (claim {claim}) failed: {what} (simulated)"),
                "`devenv up` makes the claim; a new mount needs `devenv up --recreate`",
            )
        };
        // The writer pod and the reader pod: two operations, each its own Job in the cluster.
        self.op(
            "kube.smoke_shared_write",
            &claim,
            true,
            cancel,
            |_| {},
            |s| {
                let cl = Self::cluster_mut(s, &c)?;
                let f = Self::claim_file(cl, &claim, &file)
                    .ok_or_else(|| missing("the claim is not bound to a mounted directory"))?;
                std::fs::create_dir_all(f.parent().unwrap_or(Path::new("/")))
                    .and_then(|_| std::fs::write(&f, &spec.token))
                    .map_err(|e| missing(&format!("the writer could not write {}: {e}", f.display())))
            },
        )?;
        self.op(
            "kube.smoke_shared_read",
            &claim,
            true,
            cancel,
            |_| {},
            |s| {
                let cl = Self::cluster_mut(s, &c)?;
                let f = Self::claim_file(cl, &claim, &file).ok_or_else(|| missing("the claim is gone"))?;
                let read = std::fs::read_to_string(&f).unwrap_or_default();
                let _ = std::fs::remove_file(&f);
                if read.trim() == spec.token {
                    Ok(())
                } else {
                    Err(missing("the reader did not find the writer's file"))
                }
            },
        )
    }

    fn delete_namespace(&self, target: &KubeTarget, name: &str, cancel: &Cancel) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.delete_namespace",
            name,
            true,
            cancel,
            |_| {},
            |s| {
                if let Some(cl) = s.clusters.get_mut(&c) {
                    cl.namespaces.remove(name);
                }
                Ok(())
            },
        )
    }

    fn set_applied(
        &self,
        target: &KubeTarget,
        env: &str,
        key: &str,
        value: Option<&str>,
        cancel: &Cancel,
    ) -> Result<()> {
        let c = Self::target_cluster(target);
        self.op(
            "kube.set_applied",
            key,
            true,
            cancel,
            |_| {},
            |s| {
                let record = Self::cluster_mut(s, &c)?.records.entry(env.to_string()).or_default();
                match value {
                    Some(v) => record.insert(key.to_string(), v.to_string()),
                    None => record.remove(key),
                };
                Ok(())
            },
        )
    }
}

impl SimWorld {
    /// Every workload in the cluster with the labels it carries: what the charts made (labelled
    /// with their release's instance label), and the StatefulSets the Prometheus operator makes
    /// from `Prometheus` objects, with the operator's own labels.
    fn workloads(cl: &SimCluster) -> Vec<(BTreeMap<String, String>, charts::Workload)> {
        let mut out = Vec::new();
        for (release, r) in &cl.rendered {
            if !cl.releases.iter().any(|x| &x.name == release && x.status == "deployed") {
                continue;
            }
            for w in &r.workloads {
                let labels = BTreeMap::from([("app.kubernetes.io/instance".to_string(), w.instance.clone())]);
                out.push((labels, w.clone()));
            }
            let namespace = r.workloads.first().map(|w| w.namespace.clone()).unwrap_or_default();
            for name in &r.operated {
                let labels = BTreeMap::from([
                    ("app.kubernetes.io/instance".to_string(), name.clone()),
                    ("app.kubernetes.io/name".to_string(), "prometheus".to_string()),
                    (
                        "app.kubernetes.io/managed-by".to_string(),
                        "prometheus-operator".to_string(),
                    ),
                ]);
                let w = charts::Workload {
                    kind: "StatefulSet".into(),
                    name: format!("prometheus-{name}"),
                    namespace: namespace.clone(),
                    instance: name.clone(),
                    ..Default::default()
                };
                out.push((labels, w));
            }
        }
        out
    }

    /// `k=v,k2=v2` selects workloads carrying every one of those labels.
    fn selects(selector: &str, labels: &BTreeMap<String, String>) -> bool {
        selector.split(',').all(|term| match term.split_once('=') {
            Some((k, v)) => labels.get(k.trim()).is_some_and(|x| x == v.trim()),
            None => false,
        })
    }

    /// What the kubelet does with a pod's hostPath volumes, and whether the pod's user can then
    /// create its data directory: a missing `DirectoryOrCreate` directory is made as root with
    /// mode 0755, a missing `Directory` one fails the mount, and hostPath volumes get no fsGroup
    /// change, so only the directory's own owner and mode decide. Real directories on this
    /// machine, judged by their mode bits.
    fn kubelet(cl: &SimCluster, found: &[charts::Workload]) -> Option<PodProblem> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        for w in found {
            let (Some(pgdata), Some(uid)) = (&w.pgdata, w.run_as_user) else {
                continue;
            };
            for (mount, claim) in &w.claims {
                let Some(rest) = pgdata.strip_prefix(mount.as_str()) else {
                    continue;
                };
                let key = format!("{}/{claim}", w.namespace);
                let Some(node_path) = cl.volumes.get(&key) else {
                    continue;
                };
                let Some(dir) = Self::claim_file(cl, &key, "") else {
                    continue;
                };
                let image = w.images.last().cloned().unwrap_or_default();
                if !dir.is_dir() {
                    if cl.volume_types.get(&key).map(String::as_str) == Some("Directory") {
                        return Some(PodProblem {
                            reason: "ContainerCreating".into(),
                            message: format!(
                                "MountVolume.SetUp failed for volume \"data\" : hostPath type check failed: {node_path} is not a directory (simulated)"
                            ),
                            image,
                            log: String::new(),
                        });
                    }
                    let _ = std::fs::create_dir_all(&dir)
                        .and_then(|_| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)));
                }
                let Ok(meta) = std::fs::metadata(&dir) else { continue };
                let mode = meta.permissions().mode();
                // The chart's pods run as uid 999 with group 999.
                let writable = if i64::from(meta.uid()) == uid {
                    mode & 0o300 == 0o300
                } else if i64::from(meta.gid()) == uid {
                    mode & 0o030 == 0o030
                } else {
                    mode & 0o003 == 0o003
                };
                if !writable {
                    return Some(PodProblem {
                        reason: "CrashLoopBackOff".into(),
                        message: format!("back-off restarting failed container {} (simulated)", w.name),
                        image,
                        log: format!("mkdir: cannot create directory '{pgdata}': Permission denied"),
                    });
                }
                let _ = std::fs::create_dir_all(dir.join(rest.trim_start_matches('/')));
            }
        }
        None
    }

    /// Whether something answers `probe` in cluster `c`: its host port maps to a NodePort of a
    /// Service a deployed release made; through the ingress, an Ingress for the Host header (the
    /// run's own echo backend, Grafana's, Prometheus's) must name a class that controller serves.
    fn serves(c: &SimCluster, probe: &Probe, echo_ns: &str, problems: &BTreeMap<String, PodProblem>) -> bool {
        let Some(node_port) = c.ports.iter().find(|(_, h)| *h == probe.port).map(|(cp, _)| *cp) else {
            return false;
        };
        let deployed = |release: &str| {
            c.releases.iter().any(|r| r.name == release && r.status == "deployed") && !problems.contains_key(release)
        };
        let Some((release, controller)) = c.rendered.iter().find(|(_, r)| {
            r.services
                .iter()
                .any(|s| s.node_ports.iter().any(|(_, p)| *p == node_port))
        }) else {
            return false;
        };
        if !deployed(release) {
            return false;
        }
        let routed = |class: &Option<String>| class.as_ref().is_some_and(|c| controller.ingress_classes.contains(c));
        match &probe.check {
            Check::Http { .. } => c
                .namespaces
                .get(echo_ns)
                .is_some_and(|n| n.echo && routed(&n.ingress_class)),
            Check::Prometheus { host_header } | Check::Grafana { host_header } => c.rendered.iter().any(|(rel, r)| {
                deployed(rel)
                    && r.ingresses
                        .iter()
                        .any(|i| i.hosts.contains(host_header) && routed(&i.class))
            }),
            Check::Postgres { .. } | Check::Redis => true,
        }
    }

    /// Readiness as the simulated cluster has it: a broken pod waits out the timeout, then explains.
    fn wait_problem(&self, op: &str, c: &str, what: &str, ns: &str, timeout: Duration, cancel: &Cancel) -> Result<()> {
        let problem = self.op(
            op,
            what,
            false,
            cancel,
            |_| {},
            |s| {
                Self::cluster_mut(s, c)?;
                Ok(s.pod_problems.get(what).cloned())
            },
        )?;
        let Some(p) = problem else { return Ok(()) };
        if !cancel.sleep(timeout) {
            return Err(cancel.error());
        }
        Err(crate::readiness::not_ready_error(
            what,
            ns,
            timeout,
            &Self::stuck_snapshot(what, ns, &p),
        ))
    }
}

impl Prober for SimWorld {
    fn probe(
        &self,
        probe: &Probe,
        _password: Option<&str>,
        token: &str,
        _timeout: Duration,
        cancel: &Cancel,
    ) -> Result<()> {
        let endpoint = format!("{}:{}", probe.host, probe.port);
        self.op(
            "probe",
            &probe.name,
            false,
            cancel,
            |_| {},
            |s| {
                // The host port leads, through the node's port mappings, to a Service's NodePort.
                let echo = format!("devenv-smoke-{token}");
                let serving = s
                    .clusters
                    .values()
                    .any(|c| c.nodes.iter().all(|n| n.running) && Self::serves(c, probe, &echo, &s.pod_problems));
                if serving {
                    Ok(())
                } else {
                    Err(Error::failed(
                        format!("{}: nothing answers on {endpoint} (simulated)", probe.name),
                        "run `devenv status` to see which component is not ready",
                    ))
                }
            },
        )
    }
}

impl Host for SimWorld {
    fn tool(&self, tool: &str, _cancel: &Cancel) -> Vec<crate::tools::Found> {
        let h = self.state().host;
        if h.missing_tools.contains(tool) {
            return vec![];
        }
        let version = h.tool_versions.get(tool).and_then(|v| crate::tools::Version::parse(v));
        vec![crate::tools::Found {
            path: PathBuf::from(format!("/sim/bin/{tool}")),
            version,
            problem: None,
            managed: false,
        }]
    }

    fn free_ports(&self, _address: &str, n: usize, avoid: &[u16]) -> Vec<u16> {
        self.with(|s| {
            let held = Self::all_published(s);
            let from = s.host.next_free_port.max(20000);
            let ports: Vec<u16> = (from..u16::MAX)
                .filter(|p| {
                    !avoid.contains(p) && !s.host.busy_ports.contains_key(p) && !held.iter().any(|h| h.host_port == *p)
                })
                .take(n)
                .collect();
            s.host.next_free_port = ports.last().map_or(from, |p| p + 1);
            ports
        })
        .unwrap_or_default()
    }

    fn port_holder(&self, _address: &str, port: u16) -> Option<String> {
        let s = self.state();
        // A simulated node's published port is held as Docker holds one: by docker-proxy.
        s.host.busy_ports.get(&port).cloned().or_else(|| {
            Self::all_published(&s)
                .iter()
                .any(|p| p.host_port == port)
                .then(|| "docker-proxy (simulated)".to_string())
        })
    }

    fn engine(&self, _cancel: &Cancel) -> std::result::Result<EngineFacts, EngineProblem> {
        match self.state().host.engine_down {
            Some(m) => Err(EngineProblem::DaemonDown(m)),
            None => Ok(EngineFacts {
                server_version: "20.10.24".into(),
                api_version: "1.41".into(),
                os: "Debian GNU/Linux 12 (simulated)".into(),
                arch: "x86_64".into(),
                cgroup_version: "2".into(),
                cgroup_driver: "systemd".into(),
                cpus: 8,
                memory_bytes: 16 << 30,
                root_dir: "/var/lib/docker".into(),
                ..Default::default()
            }),
        }
    }

    fn read(&self, path: &str) -> Option<String> {
        self.state().host.files.get(path).cloned()
    }

    fn own_addresses(&self) -> Vec<std::net::IpAddr> {
        self.state().host.addresses
    }

    fn free_bytes(&self, _path: &str) -> Option<u64> {
        Some(self.state().host.free_bytes.unwrap_or(200 << 30))
    }
}

impl SimWorld {
    /// Adds an image to the simulated host engine.
    pub fn add_host_image(&self, name: &str, size: u64) {
        let id = format!(
            "sha256:{}",
            crate::plan::desired::digest(&[name, &size.to_string(), &format!("{:?}", std::time::SystemTime::now())])
        );
        self.with(|s| s.host_images.insert(name.to_string(), SimImage { id, size }))
            .expect("world");
    }

    fn node_store<'s>(s: &'s mut SimState, node: &str) -> &'s mut BTreeMap<String, String> {
        let key = s
            .clusters
            .iter()
            .find(|(_, c)| c.nodes.iter().any(|n| n.name == node))
            .map(|(k, _)| k.clone())
            .unwrap_or_default();
        s.clusters
            .entry(key)
            .or_default()
            .node_images
            .entry(node.to_string())
            .or_default()
    }
}

impl ImageTransport for SimWorld {
    /// A pull from the internet (simulated): what the registries publish comes down unless the
    /// machine is offline; an image nobody publishes is the registry's "not found".
    fn pull(&self, name: &str, _platform: Option<&str>, cancel: &Cancel) -> Result<()> {
        let name2 = name.to_string();
        self.op("images.pull", name, true, cancel, |_| {}, move |s| {
            if s.host.offline {
                return Err(Error::failed(
                    format!("Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host (simulated: offline)\n  `docker pull --quiet {name2}` exited with status 1"),
                    "",
                ));
            }
            if s.host.unpublished.contains(&name2) {
                return Err(Error::failed(
                    format!("Error response from daemon: manifest for {name2} not found: manifest unknown (simulated)\n  `docker pull --quiet {name2}` exited with status 1"),
                    "",
                ));
            }
            let id = format!("sha256:{}", crate::components::digest(&[&name2]));
            s.host_images.insert(name2.clone(), SimImage { id, size: 50 << 20 });
            Ok(())
        })
    }

    fn local_image(&self, name: &str, cancel: &Cancel) -> Result<Option<LocalImage>> {
        self.op(
            "images.inspect",
            name,
            false,
            cancel,
            |_| {},
            |s| {
                Ok(s.host_images.get(name).map(|i| LocalImage {
                    name: name.to_string(),
                    id: i.id.clone(),
                    platform: "linux/amd64".into(),
                    size: i.size,
                }))
            },
        )
    }

    /// Answers the two node commands the loader runs: `crictl inspecti --output json REF` and
    /// `ctr --namespace=k8s.io images tag --force FROM TO`.
    fn exec(&self, container: &str, argv: &[String], cancel: &Cancel) -> Result<ExecOutput> {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mutating = a.contains(&"tag");
        self.op(
            "images.exec",
            container,
            mutating,
            cancel,
            |_| {},
            |s| {
                let store = Self::node_store(s, container);
                Ok(match a.as_slice() {
                    ["crictl", "inspecti", "--output", "json", r] => {
                        let id = store
                            .get(*r)
                            .cloned()
                            .or_else(|| store.values().find(|v| v == r).cloned());
                        match id {
                            Some(id) => {
                                let tags: Vec<&String> =
                                    store.iter().filter(|(_, v)| **v == id).map(|(k, _)| k).collect();
                                ExecOutput {
                                    code: 0,
                                    stdout: serde_json::json!({"status": {"id": id, "repoTags": tags}}).to_string(),
                                    stderr: String::new(),
                                }
                            }
                            None => ExecOutput {
                                code: 1,
                                stdout: String::new(),
                                stderr: format!("no such image \"{r}\" present"),
                            },
                        }
                    }
                    ["ctr", "--namespace=k8s.io", "images", "tag", "--force", from, to] => {
                        match store.get(*from).cloned() {
                            Some(id) => {
                                store.insert(to.to_string(), id);
                                ExecOutput::default()
                            }
                            None => ExecOutput {
                                code: 1,
                                stdout: String::new(),
                                stderr: format!("ctr: image \"{from}\": not found"),
                            },
                        }
                    }
                    other => ExecOutput {
                        code: 127,
                        stdout: String::new(),
                        stderr: format!("simulated node: unknown command {other:?}"),
                    },
                })
            },
        )
    }

    fn stream_into(
        &self,
        images: &[String],
        _platform: Option<&str>,
        containers: &[String],
        _argv: &[String],
        progress: &(dyn Fn(&str, u64) + Sync),
        cancel: &Cancel,
    ) -> Result<Vec<Delivery>> {
        let (sizes, speed) = self.with(|s| {
            (
                images
                    .iter()
                    .map(|i| s.host_images.get(i).map(|x| x.size).unwrap_or(0))
                    .sum::<u64>(),
                s.bytes_per_ms,
            )
        })?;
        let start = now_ms();
        // All nodes receive at once: the time is one transfer's.
        if let Some(bpm) = speed.filter(|b| *b > 0)
            && !cancel.sleep(Duration::from_millis(sizes / bpm))
        {
            return Err(cancel.error());
        }
        self.with(|s| {
            let mut out = Vec::new();
            for node in containers {
                let fault = s
                    .faults
                    .iter()
                    .find(|f| f.op == "images.import" && f.target.as_deref().is_none_or(|t| t == node))
                    .map(|f| f.message.clone());
                let result = match fault {
                    Some(m) => Ok(ExecOutput {
                        code: 1,
                        stdout: String::new(),
                        stderr: m,
                    }),
                    None => {
                        let found: Vec<(String, String)> = images
                            .iter()
                            .filter_map(|i| {
                                s.host_images
                                    .get(i)
                                    .map(|x| (crate::images::normalize(i), x.id.clone()))
                            })
                            .collect();
                        let store = Self::node_store(s, node);
                        for (name, id) in found {
                            store.insert(name, id);
                        }
                        progress(node, sizes);
                        Ok(ExecOutput::default())
                    }
                };
                s.calls.push(Call {
                    op: "images.import".into(),
                    target: node.clone(),
                    mutating: true,
                    start_ms: start,
                    end_ms: now_ms(),
                    bytes: sizes,
                });
                out.push(Delivery {
                    node: node.clone(),
                    bytes: sizes,
                    result,
                });
            }
            out
        })
    }

    fn containerd_store(&self, _cancel: &Cancel) -> Result<bool> {
        Ok(false)
    }
}

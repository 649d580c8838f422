//! The external systems devenv talks to, each behind one small trait. `adapters/` holds the real
//! implementations (kind, minikube, helm, kubectl, docker); `crate::sim` (tests and benchmarks
//! only) the stateful test double: one simulated world shared by all of them.

use crate::error::Result;
use crate::exec::Cancel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The labels kind gives its node containers: the cluster's name, and the node's role.
pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
pub const ROLE_LABEL: &str = "io.x-k8s.kind.role";

/// What loading did to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    AlreadyOnAll {
        nodes: usize,
    },
    Loaded {
        nodes: Vec<String>,
        retagged: Vec<String>,
        bytes: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub images: Vec<(String, LoadOutcome)>,
    /// Bytes sent to nodes in all.
    pub bytes: u64,
}

impl LoadReport {
    pub fn lines(&self) -> Vec<String> {
        self.images
            .iter()
            .map(|(name, o)| match o {
                LoadOutcome::AlreadyOnAll { nodes } => format!("{name}: already on all {nodes} node(s)"),
                LoadOutcome::Loaded { nodes, retagged, bytes } => {
                    let mut parts = vec![];
                    if !nodes.is_empty() {
                        parts.push(format!("loaded into {} ({bytes} bytes)", nodes.join(", ")));
                    }
                    if !retagged.is_empty() {
                        parts.push(format!(
                            "tagged on {} (already there under another name)",
                            retagged.join(", ")
                        ));
                    }
                    format!("{name}: {}", parts.join("; "))
                }
            })
            .collect()
    }
}

/// A node container as the container engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub role: String,
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterState {
    Absent,
    Present { nodes: Vec<NodeState> },
}

impl ClusterState {
    pub fn stopped_nodes(&self) -> Vec<&str> {
        match self {
            ClusterState::Absent => vec![],
            ClusterState::Present { nodes } => nodes.iter().filter(|n| !n.running).map(|n| n.name.as_str()).collect(),
        }
    }
}

/// The container engine (Docker or Podman): containers found by label, started again.
pub trait ContainerEngine: Send + Sync {
    /// Containers (running or not) carrying `label=value`; kind labels its nodes this way.
    fn containers_labelled(&self, label: &str, value: &str, cancel: &Cancel) -> Result<Vec<NodeState>>;
    fn start(&self, names: &[String], cancel: &Cancel) -> Result<()>;
    /// Force-removes containers (leftover nodes a failed delete did not remove).
    fn remove(&self, names: &[String], cancel: &Cancel) -> Result<()>;
    /// Runs a throwaway container to its end (no network, removed afterwards); fails with its
    /// output when it exits non-zero.
    fn run(&self, spec: &RunSpec, cancel: &Cancel) -> Result<()>;
    /// The network addresses of the running containers.
    fn addresses(&self, cancel: &Cancel) -> Result<Vec<std::net::IpAddr>>;
    /// Stops containers (their state is kept; `start` brings them back).
    fn stop(&self, names: &[String], cancel: &Cancel) -> Result<()>;
    /// The host ports published by the containers (running or stopped) that carry `label`, with
    /// that label's value: which kind cluster holds which port on this machine.
    fn published(&self, label: &str, cancel: &Cancel) -> Result<Vec<Published>>;
}

/// One host port a container publishes (as its HostConfig keeps it, stopped or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub container: String,
    /// The value of the label asked for (a kind node's cluster name).
    pub owner: String,
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
}

/// A throwaway container: what `docker run --rm` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub image: String,
    /// `uid:gid`.
    pub user: String,
    /// (directory on this machine, path in the container).
    pub mounts: Vec<(PathBuf, String)>,
    pub entrypoint: String,
    pub args: Vec<String>,
}

/// Everything a provider needs to create a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    pub node_image: String,
    /// kind: the kind-config.yaml file devenv hands to kind.
    pub config_path: PathBuf,
    pub kubernetes_version: String,
    pub wait: std::time::Duration,
}

/// How to reach the cluster: always an explicit kubeconfig and context, never the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    pub kubeconfig: PathBuf,
    pub context: String,
}

pub trait ClusterProvider: Send + Sync {
    /// Read-only and cheap.
    fn observe(&self, name: &str, cancel: &Cancel) -> Result<ClusterState>;
    fn create(&self, spec: &ClusterSpec, cancel: &Cancel) -> Result<()>;
    fn delete(&self, name: &str, cancel: &Cancel) -> Result<()>;
    /// Starts node containers that have exited.
    fn start(&self, name: &str, cancel: &Cancel) -> Result<()>;
    /// Stops the cluster's nodes, keeping everything in them (`start` brings them back).
    fn stop(&self, name: &str, cancel: &Cancel) -> Result<()>;
    /// The cluster's kubeconfig, for the file devenv keeps in its state dir.
    fn kubeconfig(&self, name: &str, cancel: &Cancel) -> Result<String>;
    /// The kube context name for this cluster.
    fn context(&self, name: &str) -> String;
    /// Loads local images into every node; `progress(node, bytes so far)`.
    fn load_images(
        &self,
        name: &str,
        images: &[String],
        progress: &(dyn Fn(&str, u64) + Sync),
        cancel: &Cancel,
    ) -> Result<LoadReport>;
    /// The names of all clusters of this provider on this machine.
    fn list(&self, cancel: &Cancel) -> Result<Vec<String>>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    pub name: String,
    pub namespace: String,
    /// deployed, failed, pending-install, pending-upgrade, pending-rollback, uninstalling, …
    pub status: String,
    /// chart-version, as `helm list` prints it.
    pub chart: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSpec {
    pub release: String,
    pub namespace: String,
    pub chart: String,
    pub repository: Option<String>,
    pub version: Option<String>,
    pub values_files: Vec<PathBuf>,
    pub timeout: std::time::Duration,
}

pub trait Helm: Send + Sync {
    /// All releases in every namespace, in one call.
    fn list(&self, target: &KubeTarget, cancel: &Cancel) -> Result<Vec<ReleaseInfo>>;
    /// `helm upgrade --install`, waiting for the chart's hooks (readiness is `Kube::wait_release_ready`).
    fn upgrade_install(&self, target: &KubeTarget, spec: &InstallSpec, cancel: &Cancel) -> Result<()>;
    fn uninstall(&self, target: &KubeTarget, release: &str, namespace: &str, cancel: &Cancel) -> Result<()>;
    /// Clears a release stuck in `pending-*` by an interrupted run.
    fn recover(&self, target: &KubeTarget, release: &ReleaseInfo, cancel: &Cancel) -> Result<()>;
}

/// What devenv recorded in the cluster about what it applied (ctlptl-style).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Key -> value; `cluster` holds the cluster spec digest, `component.<name>` a component's digest.
    pub entries: BTreeMap<String, String>,
}

pub trait Kube: Send + Sync {
    /// Every devenv environment's record in the cluster (each names its environment), in one
    /// request: a cluster may hold more than one environment's releases.
    fn records(&self, target: &KubeTarget, cancel: &Cancel) -> Result<Vec<(String, Applied)>>;
    /// This environment's record.
    fn get_applied(&self, target: &KubeTarget, env: &str, cancel: &Cancel) -> Result<Option<Applied>> {
        Ok(self
            .records(target, cancel)?
            .into_iter()
            .find(|(e, _)| e == env)
            .map(|(_, a)| a))
    }
    /// Sets (Some) or removes (None) one key of the record.
    fn set_applied(
        &self,
        target: &KubeTarget,
        env: &str,
        key: &str,
        value: Option<&str>,
        cancel: &Cancel,
    ) -> Result<()>;
    /// Waits until every node reports Ready, or fails after `timeout` saying which are not.
    fn wait_nodes_ready(&self, target: &KubeTarget, timeout: std::time::Duration, cancel: &Cancel) -> Result<()>;
    /// The API server's version, e.g. `v1.36.4`.
    fn server_version(&self, target: &KubeTarget, cancel: &Cancel) -> Result<String>;
    /// Removes the whole record (when devenv leaves a cluster it did not create).
    fn delete_applied(&self, target: &KubeTarget, env: &str, cancel: &Cancel) -> Result<()>;
    /// Waits until every Deployment, StatefulSet, DaemonSet and Job labelled `w.selector` in
    /// `w.namespace` is ready (and, with `w.require_some`, until there is at least one), or fails
    /// after `timeout` saying why: the pods, their waiting reasons, scheduling failures, the last
    /// log lines, Warning events.
    fn wait_ready(
        &self,
        target: &KubeTarget,
        w: &Workloads,
        timeout: std::time::Duration,
        cancel: &Cancel,
    ) -> Result<()>;
    /// Creates the run's smoke namespace, labelled for the sweep and annotated with its owner.
    fn create_smoke_namespace(&self, target: &KubeTarget, spec: &SmokeSpec, cancel: &Cancel) -> Result<()>;
    /// In the smoke namespace: an echo backend answering the run's token, its Service and an
    /// Ingress for `spec.host`; waits until the backend is ready. Retries the Ingress while an
    /// ingress controller's admission webhook is not answering yet.
    fn smoke_echo(
        &self,
        target: &KubeTarget,
        spec: &SmokeSpec,
        timeout: std::time::Duration,
        cancel: &Cancel,
    ) -> Result<()>;
    /// Runs a Job in the smoke namespace that resolves each `host:port` by cluster DNS and
    /// connects to it; fails with the pod's reason and last lines when it does not complete.
    fn smoke_job(
        &self,
        target: &KubeTarget,
        spec: &SmokeSpec,
        targets: &[(String, u16)],
        timeout: std::time::Duration,
        cancel: &Cancel,
    ) -> Result<()>;
    /// Smoke namespaces of environment `env` (by label), to sweep leftovers of killed runs.
    fn smoke_namespaces(&self, target: &KubeTarget, env: &str, cancel: &Cancel) -> Result<Vec<SmokeNamespace>>;
    /// Creates (or keeps) a PersistentVolume on a node path and the claim bound to it, so that a
    /// chart finds its data where the last cluster left it.
    fn ensure_volume(&self, target: &KubeTarget, volume: &VolumeSpec, cancel: &Cancel) -> Result<()>;
    /// Deletes a namespace devenv created (absent is fine).
    fn delete_namespace(&self, target: &KubeTarget, name: &str, cancel: &Cancel) -> Result<()>;
    /// Deletes a claim and the volume devenv made for it (absent is fine); the files it points at
    /// on the node's mount are left alone.
    fn delete_volume(&self, target: &KubeTarget, pv: &str, namespace: &str, claim: &str, cancel: &Cancel)
    -> Result<()>;
    /// Helm's releases read from its storage (Secrets labelled `owner=helm`) in one API call, so
    /// that observing needs no `helm` process. Without `charts`, only the Secrets' metadata is
    /// fetched (name, status and revision are labels; a release's body can be a megabyte) and
    /// `chart` is empty. None when they cannot be read that way (no right to list Secrets): the
    /// caller asks `helm list`.
    fn helm_releases(&self, target: &KubeTarget, charts: bool, cancel: &Cancel) -> Result<Option<Vec<ReleaseInfo>>>;
    /// Polls the metrics API (`metrics.k8s.io/v1beta1/nodes`) until a node reports its usage.
    fn node_metrics(&self, target: &KubeTarget, timeout: std::time::Duration, cancel: &Cancel) -> Result<()>;
    /// In the shared claim's namespace: a Job writes the run's token into a file on the claim and
    /// a second Job (on another node when there is one) reads it back and removes it.
    fn smoke_shared(
        &self,
        target: &KubeTarget,
        spec: &SmokeSpec,
        volume: &VolumeSpec,
        timeout: std::time::Duration,
        cancel: &Cancel,
    ) -> Result<()>;
}

/// What readiness waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workloads {
    /// How to name them to a user: `postgresql`, `prometheus`.
    pub what: String,
    pub namespace: String,
    /// A label selector, e.g. `app.kubernetes.io/instance=postgresql`.
    pub selector: String,
    /// There must be at least one: a chart known to make workloads of which none carry the
    /// selector's labels is waiting (or wrongly labelled), never ready at once.
    pub require_some: bool,
}

impl Workloads {
    /// Everything helm labels as the release `name`'s, which may be nothing.
    pub fn release(name: &str, namespace: &str) -> Workloads {
        Workloads {
            what: name.to_string(),
            namespace: namespace.to_string(),
            selector: format!("app.kubernetes.io/instance={name}"),
            require_some: false,
        }
    }
}

/// Where a volume's files are on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostDir {
    /// Under the state directory's `data/` (which every kind node has at `/devenv-data`).
    Data(&'static str),
    /// A directory of the user's own (`sharedData.path`).
    User(PathBuf),
}

/// A volume kept on this machine: a hostPath PersistentVolume on the node path that the data
/// directory is mounted at, pre-bound to one claim. devenv makes the directory before the
/// volume, and the volume requires it to exist (`type: Directory`): a directory the kubelet makes
/// is root's with mode 0755, which a non-root pod cannot write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The component whose chart uses the claim.
    pub component: String,
    /// The PersistentVolume's name (cluster-wide): `devenv-<env>-<component>`.
    pub name: String,
    pub namespace: String,
    pub claim: String,
    /// In every node, e.g. `/devenv-data/postgresql`.
    pub node_path: String,
    pub size: String,
    pub access: Access,
    /// The directory on this machine the node path shows.
    pub host_dir: HostDir,
}

/// A volume's access mode: PostgreSQL's is one node's; the shared one is every pod's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWriteOnce,
    ReadWriteMany,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadWriteOnce => "ReadWriteOnce",
            Access::ReadWriteMany => "ReadWriteMany",
        }
    }
}

/// The storage class name that binds devenv's volumes to their claims only (no provisioner).
pub const DATA_STORAGE_CLASS: &str = "devenv-data";

/// The hostPath type of devenv's volumes: the directory must exist (devenv makes it, open to
/// the pods' users); a kubelet that made it instead would make it root's with mode 0755.
pub const HOST_PATH_TYPE: &str = "Directory";

/// One run's smoke objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmokeSpec {
    pub env: String,
    /// `devenv-smoke-<token>`: unique to the run.
    pub namespace: String,
    pub token: String,
    /// The Ingress rule's host, which the HTTP probe sends as its Host header.
    pub host: String,
    pub echo_image: String,
    pub probe_image: String,
    /// The IngressClass of the environment's ingress controller, which the run's Ingress names.
    pub ingress_class: Option<String>,
    /// `<hostname>/<pid>` of the devenv process that owns the namespace.
    pub owner: String,
    /// Unix seconds when the run started: the sweep's age of the namespace.
    pub created: u64,
}

/// A smoke namespace found in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeNamespace {
    pub name: String,
    pub owner: String,
    /// Unix seconds when it was created.
    pub created: u64,
}

/// The labels and annotations of smoke namespaces.
pub const SMOKE_LABEL: &str = "devenv.dev/smoke";
pub const SMOKE_OWNER: &str = "devenv.dev/owner";
pub const SMOKE_CREATED: &str = "devenv.dev/created";

/// What a smoke probe checks, in the service's own protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Through the ingress, a request with the run's Host header must reach the run's echo
    /// backend: status 200 and the run's token in the body.
    Http { host_header: String },
    /// Log in, write, read back and delete a row.
    Postgres { user: String, database: String },
    /// PING, SET with a TTL, GET, DEL.
    Redis,
    /// Through the ingress: Prometheus's targets API lists at least one healthy target.
    Prometheus { host_header: String },
    /// Through the ingress: Grafana's `/api/health` answers 200 with its database ok.
    Grafana { host_header: String },
}

/// A smoke check from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub check: Check,
}

pub trait Prober: Send + Sync {
    /// `password` for the service when it has one; `token` is unique to the run.
    fn probe(
        &self,
        probe: &Probe,
        password: Option<&str>,
        token: &str,
        timeout: std::time::Duration,
        cancel: &Cancel,
    ) -> Result<()>;
}

/// The external systems a run uses.
#[derive(Clone)]
pub struct World {
    pub host: std::sync::Arc<dyn Host>,
    pub images: std::sync::Arc<dyn ImageTransport>,
    pub engine: std::sync::Arc<dyn ContainerEngine>,
    pub cluster: std::sync::Arc<dyn ClusterProvider>,
    pub helm: std::sync::Arc<dyn Helm>,
    pub kube: std::sync::Arc<dyn Kube>,
    pub prober: std::sync::Arc<dyn Prober>,
}

/// What doctor learns of the container engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineFacts {
    pub server_version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
    /// "1" or "2".
    pub cgroup_version: String,
    pub cgroup_driver: String,
    pub rootless: bool,
    /// Docker's containerd image store (breaks `kind load` of multi-platform images).
    pub containerd_store: bool,
    pub cpus: i64,
    pub memory_bytes: i64,
    pub root_dir: String,
    /// DOCKER_HOST points at another machine: ports published there are not on 127.0.0.1 here.
    pub remote: Option<String>,
}

/// Why the engine does not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineProblem {
    SocketMissing(String),
    PermissionDenied(String),
    DaemonDown(String),
    Other(String),
}

/// The machine devenv runs on, as doctor sees it.
pub trait Host: Send + Sync {
    /// Every copy of `tool` found: on PATH first, then devenv's managed one, each with its version.
    fn tool(&self, tool: &str, cancel: &Cancel) -> Vec<crate::tools::Found>;
    /// None when `address:port` can be bound; otherwise who holds it, as well as can be told.
    fn port_holder(&self, address: &str, port: u16) -> Option<String>;
    /// `n` distinct TCP ports free on `address` now, none of them in `avoid` (ports a stopped
    /// node keeps for itself without holding them), as the kernel hands them out.
    fn free_ports(&self, address: &str, n: usize, avoid: &[u16]) -> Vec<u16>;
    fn engine(&self, cancel: &Cancel) -> std::result::Result<EngineFacts, EngineProblem>;
    /// A small system file (/proc/…), if readable.
    fn read(&self, path: &str) -> Option<String>;
    /// Free bytes on the filesystem holding `path`.
    fn free_bytes(&self, path: &str) -> Option<u64>;
    /// This machine's own network addresses (every interface's).
    fn own_addresses(&self) -> Vec<std::net::IpAddr>;
}

/// An image on the host's engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalImage {
    pub name: String,
    /// `sha256:…`, the config digest: the same ID containerd gives it in a node.
    pub id: String,
    /// `linux/amd64`.
    pub platform: String,
    pub size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// What one node got from a stream.
#[derive(Debug)]
pub struct Delivery {
    pub node: String,
    pub bytes: u64,
    pub result: Result<ExecOutput>,
}

/// The container engine's image API: what `devenv load` needs.
pub trait ImageTransport: Send + Sync {
    /// None when the host has no such image.
    fn local_image(&self, name: &str, cancel: &Cancel) -> Result<Option<LocalImage>>;
    /// Pulls an image into this machine's engine (`platform` such as `linux/amd64`); the error
    /// carries the engine's own message.
    fn pull(&self, name: &str, platform: Option<&str>, cancel: &Cancel) -> Result<()>;
    fn exec(&self, container: &str, argv: &[String], cancel: &Cancel) -> Result<ExecOutput>;
    /// Exports `images` once (only `platform`, when given) and streams the archive into `argv`
    /// started in each of `containers`, all at once; `progress(node, bytes so far)`.
    fn stream_into(
        &self,
        images: &[String],
        platform: Option<&str>,
        containers: &[String],
        argv: &[String],
        progress: &(dyn Fn(&str, u64) + Sync),
        cancel: &Cancel,
    ) -> Result<Vec<Delivery>>;
    /// Docker's containerd image store is on: export only the node's platform.
    fn containerd_store(&self, cancel: &Cancel) -> Result<bool>;
}

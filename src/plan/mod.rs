//! The planner: desired environment + observed environment -> an ordered list of steps, each with
//! what it does and why. Pure: no I/O, so `plan`, `up --dry-run` and `up` agree by construction.

pub mod desired;

pub use desired::{ComponentSpec, Desired, Selection};

use crate::world::{Applied, ClusterState, ReleaseInfo};
use serde::Serialize;

/// What devenv saw, read-only.
#[derive(Debug, Clone)]
pub struct Observed {
    pub cluster: ClusterState,
    /// None when the cluster is absent or devenv has never recorded anything in it.
    pub applied: Option<Applied>,
    /// The records of other devenv environments in the same cluster: (environment, record).
    pub others: Vec<(String, Applied)>,
    pub releases: Vec<ReleaseInfo>,
    pub kubeconfig_present: bool,
    /// The configured images some node lacks; None when not looked at (no running cluster).
    pub images_missing: Option<Vec<String>>,
    /// The cluster's containers are there without a working cluster: a create of devenv's that
    /// never finished (its marker is in the state directory), or nodes without a control plane.
    pub half_made: bool,
}

/// A step of the plan, by what it is of (its `Display` is the id `plan -o json` shows and the
/// executor orders by).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepId {
    Cluster,
    Kubeconfig,
    Images,
    /// The pinned images loaded into the nodes from this machine's image cache.
    Cache,
    /// Install, upgrade or keep a component (the release name).
    Component(String),
    /// Uninstall a component switched off (the release name).
    Remove(String),
    Shared,
    RemoveShared,
    Smoke,
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepId::Cluster => f.write_str("cluster"),
            StepId::Kubeconfig => f.write_str("kubeconfig"),
            StepId::Images => f.write_str("images"),
            StepId::Cache => f.write_str("image-cache"),
            StepId::Component(n) => f.write_str(n),
            StepId::Remove(n) => write!(f, "remove-{n}"),
            StepId::Shared => f.write_str("shared-data"),
            StepId::RemoveShared => f.write_str("remove-shared-data"),
            StepId::Smoke => f.write_str("smoke"),
        }
    }
}

/// A step id compares equal to the id it displays as (`StepId::Remove("redis") == "remove-redis"`).
impl PartialEq<&str> for StepId {
    fn eq(&self, other: &&str) -> bool {
        let id = self.to_string();
        id.as_str() == *other
    }
}

impl Serialize for StepId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A key of devenv's record in the cluster (`kube-system/devenv-<env>`), with the value each
/// holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// The record's format: [`crate::commands::RECORD_FORMAT`].
    Format,
    /// The digest of what the cluster was built from.
    Cluster,
    /// The node paths the cluster was created with, comma-separated.
    Mounts,
    /// The digest of the smoke run that last passed.
    Smoke,
    /// A component's digest, or [`INSTALLING`] while its first install runs.
    Component(String),
    /// The shared volume devenv made ([`desired::SharedSpec::record`]).
    SharedVolume,
    /// The digest of the pinned images last loaded into the nodes from the image cache.
    Cache,
}

impl RecordKey {
    pub fn key(&self) -> String {
        match self {
            RecordKey::Format => "format".into(),
            RecordKey::Cluster => "cluster".into(),
            RecordKey::Mounts => "mounts".into(),
            RecordKey::Smoke => "smoke".into(),
            RecordKey::Component(n) => format!("component.{n}"),
            RecordKey::SharedVolume => "volume.shared-data".into(),
            RecordKey::Cache => "image-cache".into(),
        }
    }

    /// The component a key is of, for `component.<name>`.
    pub fn component_of(key: &str) -> Option<&str> {
        key.strip_prefix("component.")
    }
}

impl Applied {
    /// The value recorded under `key`.
    pub fn get(&self, key: &RecordKey) -> Option<&String> {
        self.entries.get(&key.key())
    }
}

/// A component's record while its first install runs (its digest once it is ready): devenv
/// installed it even if it never got ready.
pub const INSTALLING: &str = "installing";

/// What a step does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Create,
    Upgrade,
    Keep,
    Recreate,
    Delete,
    Start,
    Recover,
    Run,
}

impl Change {
    pub fn word(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Upgrade => "upgrade",
            Change::Keep => "keep",
            Change::Recreate => "recreate",
            Change::Delete => "delete",
            Change::Start => "start",
            Change::Recover => "recover",
            Change::Run => "run",
        }
    }
    pub fn sign(self) -> char {
        match self {
            Change::Create => '+',
            Change::Upgrade => '~',
            Change::Keep => '=',
            Change::Recreate => '!',
            Change::Delete => '-',
            Change::Start => '^',
            Change::Recover => '*',
            Change::Run => '>',
        }
    }
    /// Whether the step changes anything.
    pub fn mutates(self) -> bool {
        !matches!(self, Change::Keep)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    CreateCluster,
    RecreateCluster,
    StartCluster,
    /// Write devenv's kubeconfig for an existing cluster.
    WriteKubeconfig,
    /// Install or upgrade the component of this name in `Desired::components`.
    Install(String),
    /// Wait until the component of this name is ready (its cluster was started again).
    WaitReady(String),
    /// Load the image cache's images into the nodes.
    CacheImages,
    /// Remove the containers of a half-made cluster, then create it.
    ReplaceHalfMade,
    /// Clear a stuck release, then install the component of this name.
    RecoverAndInstall(ReleaseInfo, String),
    Uninstall {
        release: String,
        namespace: String,
    },
    LoadImages,
    /// Create the shared data volume and its claim (`Desired::shared`).
    EnsureShared,
    /// Remove the shared data volume's claim and volume (the files on this machine stay).
    RemoveShared {
        pv: String,
        namespace: String,
        claim: String,
    },
    Smoke,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: StepId,
    #[serde(rename = "kind")]
    pub change: Change,
    pub target: String,
    pub reason: String,
    pub deps: Vec<StepId>,
    #[serde(skip)]
    pub action: Action,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub environment: String,
    pub driver: &'static str,
    pub steps: Vec<Step>,
    /// Things the user should know that are not steps (a cluster kept despite a changed config).
    pub notes: Vec<String>,
    /// The shared data volume waits for `--recreate` (its mount is missing): no shared check.
    #[serde(skip)]
    pub shared_waits: bool,
}

/// Releases this environment would change that another devenv environment recorded as its own
/// and this one did not: (release, namespace, the owning environment). Two environments pointed
/// at one cluster must never upgrade or uninstall each other's releases.
pub fn owned_elsewhere(d: &Desired, o: &Observed) -> Vec<(String, String, String)> {
    let mine = o.applied.clone().unwrap_or_default();
    let touched = d
        .components
        .iter()
        .map(|c| (c.name.as_str(), c.namespace.as_str()))
        .chain(d.switched_off.iter().map(|(n, ns, _)| (n.as_str(), ns.as_str())));
    let mut out = Vec::new();
    for (name, namespace) in touched {
        let key = RecordKey::Component(name.to_string());
        let exists = o.releases.iter().any(|r| r.name == name && r.namespace == namespace);
        if !exists || mine.get(&key).is_some() {
            continue;
        }
        if let Some((env, _)) = o.others.iter().find(|(_, a)| a.get(&key).is_some()) {
            out.push((name.to_string(), namespace.to_string(), env.clone()));
        }
    }
    out
}

impl Plan {
    /// The step of `id`, if the plan has one.
    pub fn step(&self, id: &StepId) -> Option<&Step> {
        self.steps.iter().find(|s| &s.id == id)
    }

    /// The cluster is made by this plan (created, or deleted and created again).
    pub fn makes_cluster(&self) -> bool {
        self.step(&StepId::Cluster)
            .is_some_and(|s| matches!(s.change, Change::Create | Change::Recreate))
    }

    pub fn changes(&self) -> usize {
        self.steps.iter().filter(|s| s.change.mutates()).count()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub recreate: bool,
    /// The cluster was just started again (after `stop`, a reboot or a Docker restart): every
    /// component devenv keeps is waited for until ready, and the smoke tests run.
    pub restarted: bool,
}

pub fn plan(d: &Desired, o: &Observed, opts: Options) -> Plan {
    let mut steps = Vec::new();
    let mut notes = d.notes.clone();
    let applied = o.applied.clone().unwrap_or_default();
    let recorded = |k: &RecordKey| applied.get(k).cloned();

    // 1. The cluster.
    let stopped = o.cluster.stopped_nodes();
    let (cluster_kind, cluster_reason, action) = match (&o.cluster, recorded(&RecordKey::Cluster)) {
        (ClusterState::Present { nodes }, _) if o.half_made => (
            Change::Recreate,
            format!(
                "half-made: node container(s) {} without a working cluster (a create that did not finish); removed and created again",
                nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
            Action::ReplaceHalfMade,
        ),
        (ClusterState::Absent, _) => (
            Change::Create,
            format!(
                "cluster `{}` does not exist; created, kubeconfig written (user-only), every node Ready within timeouts.cluster",
                d.name
            ),
            Action::CreateCluster,
        ),
        (ClusterState::Present { .. }, rec) if rec.as_deref() != Some(d.cluster_digest.as_str()) && opts.recreate => (
            Change::Recreate,
            match rec {
                Some(_) => format!(
                    "--recreate: the cluster was built from a different kind-config.yaml or node image; it is deleted and created again ({})",
                    d.deletion_keeps(None)
                ),
                None => format!(
                    "--recreate: devenv has no record of how this cluster was built; it is deleted and created again ({})",
                    d.deletion_keeps(None)
                ),
            },
            Action::RecreateCluster,
        ),
        (ClusterState::Present { .. }, _) if opts.recreate => (
            Change::Recreate,
            format!(
                "--recreate: deleted and created again, although its configuration is unchanged ({})",
                d.deletion_keeps(None)
            ),
            Action::RecreateCluster,
        ),
        (ClusterState::Present { .. }, _) if !stopped.is_empty() => (
            Change::Start,
            format!(
                "node container(s) {} have exited (after a Docker or host restart?); devenv starts them",
                stopped.join(", ")
            ),
            Action::StartCluster,
        ),
        (ClusterState::Present { .. }, Some(rec)) if rec == d.cluster_digest => (
            Change::Keep,
            "running, built from the same configuration and node image".to_string(),
            Action::Nothing,
        ),
        (ClusterState::Present { .. }, Some(_)) => {
            notes.push(format!(
                "cluster `{}` was built from a different kind-config.yaml or node image than the current one; it is kept. Run `devenv up --recreate` to rebuild it: {}.",
                d.name,
                d.deletion_keeps(None)
            ));
            (
                Change::Keep,
                "running; its configuration differs from the files (see the note below) and is kept until --recreate"
                    .to_string(),
                Action::Nothing,
            )
        }
        (ClusterState::Present { .. }, None) => (
            Change::Keep,
            "running; devenv has not recorded how it was built, so it is adopted as it is".to_string(),
            Action::Nothing,
        ),
    };
    let fresh = matches!(cluster_kind, Change::Create | Change::Recreate);
    // Stopped: nothing in it can be read until it runs; `up` starts it, then plans again.
    let unread = cluster_kind == Change::Start;
    steps.push(Step {
        id: StepId::Cluster,
        change: cluster_kind,
        target: format!("cluster {}", d.name),
        reason: cluster_reason,
        deps: vec![],
        action,
    });

    // 2. The kubeconfig devenv keeps for the environment (a create writes its own).
    if !fresh && !o.kubeconfig_present {
        steps.push(Step {
            id: StepId::Kubeconfig,
            change: Change::Create,
            target: "kubeconfig".into(),
            reason: "missing from devenv's state directory".into(),
            deps: vec![StepId::Cluster],
            action: Action::WriteKubeconfig,
        });
    } else if !fresh {
        steps.push(Step {
            id: StepId::Kubeconfig,
            change: Change::Keep,
            target: "kubeconfig".into(),
            reason: "present in devenv's state directory".into(),
            deps: vec![StepId::Cluster],
            action: Action::Nothing,
        });
    }

    // 3. Components removed from the configuration, if devenv installed them.
    for (name, namespace, why) in &d.switched_off {
        let installed = !fresh && o.releases.iter().any(|r| &r.name == name && &r.namespace == namespace);
        if installed && recorded(&RecordKey::Component(name.clone())).is_some() {
            steps.push(Step {
                id: StepId::Remove(name.clone()),
                change: Change::Delete,
                target: format!("release {name}"),
                reason: format!("{why}; devenv installed it, so devenv removes it"),
                deps: vec![StepId::Cluster, StepId::Kubeconfig],
                action: Action::Uninstall {
                    release: name.clone(),
                    namespace: namespace.clone(),
                },
            });
        }
    }

    // 4. Images, before the releases that may use them.
    if !d.images.is_empty() {
        let (kind, reason, action) = match &o.images_missing {
            Some(m) if m.is_empty() && !fresh => (
                Change::Keep,
                format!("all {} image(s) are on every node, by ID", d.images.len()),
                Action::Nothing,
            ),
            Some(m) if !fresh => (
                Change::Run,
                format!("{} not on every node, or rebuilt since it was loaded", m.join(", ")),
                Action::LoadImages,
            ),
            _ => (
                Change::Run,
                format!("load {} into every node", d.images.join(", ")),
                Action::LoadImages,
            ),
        };
        steps.push(Step {
            id: StepId::Images,
            change: kind,
            target: format!("{} image(s)", d.images.len()),
            reason,
            deps: vec![StepId::Cluster, StepId::Kubeconfig],
            action,
        });
    }

    // 4b. The pinned images, from this machine's cache into the nodes, before the pods ask for
    // them (recorded by digest: a no-op `up` looks at no node).
    if !d.cached_images.is_empty() {
        let loaded = !fresh && recorded(&RecordKey::Cache).as_deref() == Some(d.cache_digest.as_str());
        let (kind, reason, action) = if unread {
            (
                Change::Keep,
                "the cluster is stopped: its nodes keep what they were loaded with".to_string(),
                Action::Nothing,
            )
        } else if loaded {
            (
                Change::Keep,
                "every pinned image was loaded into the nodes from this machine".to_string(),
                Action::Nothing,
            )
        } else {
            (
                Change::Run,
                format!(
                    "load {} pinned image(s) from this machine's engine into the nodes (pulled once onto it; none again from the internet)",
                    d.cached_images.len()
                ),
                Action::CacheImages,
            )
        };
        steps.push(Step {
            id: StepId::Cache,
            change: kind,
            target: format!("{} pinned image(s)", d.cached_images.len()),
            reason,
            deps: vec![StepId::Cluster, StepId::Kubeconfig],
            action,
        });
    }

    // 5. Components, concurrently where nothing orders them.
    for c in &d.components {
        let version = c.chart.version.clone().unwrap_or_else(|| "local".into());
        let target = format!("{} {} ({})", c.name, version, c.chart.chart);
        let rel = o
            .releases
            .iter()
            .find(|r| r.name == c.name && r.namespace == c.namespace);
        let rec = recorded(&RecordKey::Component(c.name.clone()));
        let (kind, reason, action) = match rel {
            _ if unread => (
                Change::Keep,
                "the cluster is stopped: compared with devenv's record once it runs again (`devenv up` starts it first)"
                    .to_string(),
                Action::Nothing,
            ),
            _ if fresh => (
                Change::Create,
                "installed into the new cluster".to_string(),
                Action::Install(c.name.clone()),
            ),
            None => (
                Change::Create,
                format!("not installed in namespace {}", c.namespace),
                Action::Install(c.name.clone()),
            ),
            Some(r) if r.status.starts_with("pending-") || r.status == "uninstalling" => (
                Change::Recover,
                format!(
                    "left `{}` by an interrupted run; devenv clears it, then installs",
                    r.status
                ),
                Action::RecoverAndInstall(r.clone(), c.name.clone()),
            ),
            Some(r) if r.status == "failed" => (
                Change::Upgrade,
                "its last helm operation failed; devenv installs it again".to_string(),
                Action::Install(c.name.clone()),
            ),
            Some(_) if rec.as_deref() == Some(c.digest.as_str()) => (
                Change::Keep,
                "chart, version and values unchanged since devenv installed it".to_string(),
                Action::Nothing,
            ),
            Some(r) => {
                let want = format!(
                    "{}-{}",
                    c.chart.chart.rsplit('/').next().unwrap_or(&c.chart.chart),
                    version
                );
                let reason = if rec.as_deref() == Some(INSTALLING) {
                    "its first install did not finish (it never got ready); installed again".to_string()
                } else if rec.is_none() {
                    "installed, but devenv has no record of its values; upgraded to match the files".to_string()
                } else if !r.chart.is_empty() && r.chart != want {
                    format!("chart {} -> {}", r.chart, want)
                } else {
                    let files: Vec<&str> = c.values.iter().map(|v| v.display.as_str()).collect();
                    format!("values changed ({} or devenv.yaml)", files.join(", "))
                };
                (Change::Upgrade, reason, Action::Install(c.name.clone()))
            }
        };
        // Just started again: what is kept is not ready yet; the smoke tests wait for it.
        let (kind, reason, action) = if opts.restarted && kind == Change::Keep && !unread {
            (
                Change::Run,
                format!("{reason}; the cluster was started again, so devenv waits until it is ready"),
                Action::WaitReady(c.name.clone()),
            )
        } else {
            (kind, reason, action)
        };
        let mut deps = vec![StepId::Cluster, StepId::Kubeconfig];
        deps.extend(
            c.after
                .iter()
                .filter(|a| d.components.iter().any(|x| &x.name == *a))
                .map(|a| StepId::Component(a.clone())),
        );
        if !d.images.is_empty() && c.uses_images {
            deps.push(StepId::Images);
        }
        if c.chart.images.iter().any(|i| d.cached_images.contains(i)) {
            deps.push(StepId::Cache);
        }
        steps.push(Step {
            id: StepId::Component(c.name.clone()),
            change: kind,
            target,
            reason,
            deps,
            action,
        });
    }

    // 6. The shared data volume: made of records only, so the no-op path reads nothing more.
    let mut shared_waits = false;
    let shared_rec = recorded(&RecordKey::SharedVolume);
    if let Some(sh) = &d.shared {
        let mounted = fresh
            || match recorded(&RecordKey::Mounts) {
                Some(m) => m.split(',').any(|x| x == sh.mount),
                None => recorded(&RecordKey::Cluster).as_deref() == Some(d.cluster_digest.as_str()),
            };
        let current = sh.is_current(shared_rec.as_deref());
        let v = &sh.volume;
        let (kind, reason, action) = if !mounted {
            shared_waits = true;
            notes.push(format!(
                "the shared data directory needs a new mount ({}) in the nodes, which only a new cluster gets; run `devenv up --recreate` to add it",
                sh.mount
            ));
            (
                Change::Keep,
                "waits for `devenv up --recreate`: the nodes lack its mount (see the note below)".to_string(),
                Action::Nothing,
            )
        } else if current && !fresh {
            (
                Change::Keep,
                format!("claim {}/{} bound to the shared directory", v.namespace, v.claim),
                Action::Nothing,
            )
        } else if shared_rec.is_some() && !fresh {
            (
                Change::Upgrade,
                "its claim, size or directory changed in devenv.yaml; the volume is made again (files stay)"
                    .to_string(),
                Action::EnsureShared,
            )
        } else {
            (
                Change::Create,
                format!(
                    "ReadWriteMany claim {}/{} on the shared directory, in every node at {}",
                    v.namespace, v.claim, v.node_path
                ),
                Action::EnsureShared,
            )
        };
        steps.push(Step {
            id: StepId::Shared,
            change: kind,
            target: format!("volume {}", v.name),
            reason,
            deps: vec![StepId::Cluster, StepId::Kubeconfig],
            action,
        });
    } else if let (Some(why), Some(rec), false) = (&d.shared_off, &shared_rec, fresh) {
        let r = desired::SharedRecord::parse(rec);
        let (pv, namespace, claim) = (r.pv, r.namespace, r.claim);
        steps.push(Step {
            id: StepId::RemoveShared,
            change: Change::Delete,
            target: format!("volume {pv}"),
            reason: format!("{why}; its claim and volume are removed, the files on this machine stay"),
            deps: vec![StepId::Cluster, StepId::Kubeconfig],
            action: Action::RemoveShared {
                pv: pv.to_string(),
                namespace: namespace.to_string(),
                claim: claim.to_string(),
            },
        });
    }

    // 7. Smoke tests, last, when there is anything to check (an environment of no built-in
    // component has none).
    let anything_to_check =
        !d.probes.is_empty() || !d.in_cluster.is_empty() || d.metrics_check || (d.shared.is_some() && !shared_waits);
    if d.smoke && anything_to_check {
        let changed = steps.iter().any(|s| s.change.mutates());
        let passed_before = recorded(&RecordKey::Smoke).as_deref() == Some(d.smoke_digest.as_str());
        let mut checks: Vec<String> = Vec::new();
        if !d.probes.is_empty() {
            let names: Vec<&str> = d.probes.iter().map(|p| p.name.as_str()).collect();
            checks.push(format!("{} from this machine", names.join(", ")));
        }
        if d.metrics_check {
            checks.push("the metrics API".into());
        }
        if !d.in_cluster.is_empty() {
            checks.push("in-cluster DNS".into());
        }
        if d.shared.is_some() && !shared_waits {
            checks.push("the shared volume".into());
        }
        let what = checks.join(", ");
        let (kind, reason, action) = if changed || !passed_before {
            (Change::Run, format!("check {what}"), Action::Smoke)
        } else {
            (
                Change::Keep,
                "nothing changed since they last passed; `devenv test` runs them again".to_string(),
                Action::Nothing,
            )
        };
        // After every other step, the cluster's included: the checks need what they all made.
        let deps = steps.iter().map(|s| s.id.clone()).collect();
        steps.push(Step {
            id: StepId::Smoke,
            change: kind,
            target: "smoke tests".into(),
            reason,
            deps,
            action,
        });
    }

    Plan {
        environment: d.name.clone(),
        driver: d.driver.as_str(),
        steps,
        notes,
        shared_waits,
    }
}

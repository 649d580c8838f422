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
}

/// A component's record while its first install runs (its digest once it is ready): devenv
/// installed it even if it never got ready.
pub const INSTALLING: &str = "installing";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Create,
    Upgrade,
    Keep,
    Recreate,
    Delete,
    Start,
    Recover,
    Run,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Upgrade => "upgrade",
            Kind::Keep => "keep",
            Kind::Recreate => "recreate",
            Kind::Delete => "delete",
            Kind::Start => "start",
            Kind::Recover => "recover",
            Kind::Run => "run",
        }
    }
    pub fn sign(self) -> char {
        match self {
            Kind::Create => '+',
            Kind::Upgrade => '~',
            Kind::Keep => '=',
            Kind::Recreate => '!',
            Kind::Delete => '-',
            Kind::Start => '^',
            Kind::Recover => '*',
            Kind::Run => '>',
        }
    }
    /// Whether the step changes anything.
    pub fn mutates(self) -> bool {
        !matches!(self, Kind::Keep)
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
    /// Install or upgrade the component at this index of `Desired::components`.
    Install(usize),
    /// Clear a stuck release, then install the component at this index.
    RecoverAndInstall(ReleaseInfo, usize),
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
    pub id: String,
    pub kind: Kind,
    pub target: String,
    pub reason: String,
    pub deps: Vec<String>,
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
        let key = format!("component.{name}");
        let exists = o.releases.iter().any(|r| r.name == name && r.namespace == namespace);
        if !exists || mine.entries.contains_key(&key) {
            continue;
        }
        if let Some((env, _)) = o.others.iter().find(|(_, a)| a.entries.contains_key(&key)) {
            out.push((name.to_string(), namespace.to_string(), env.clone()));
        }
    }
    out
}

impl Plan {
    pub fn changes(&self) -> usize {
        self.steps.iter().filter(|s| s.kind.mutates()).count()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub recreate: bool,
}

pub fn plan(d: &Desired, o: &Observed, opts: Options) -> Plan {
    let mut steps = Vec::new();
    let mut notes = d.notes.clone();
    let applied = o.applied.clone().unwrap_or_default();
    let recorded = |k: &str| applied.entries.get(k).cloned();

    // 1. The cluster.
    let stopped = o.cluster.stopped_nodes();
    let (cluster_kind, cluster_reason, action) = match (&o.cluster, recorded("cluster")) {
        (ClusterState::Absent, _) => (
            Kind::Create,
            format!("cluster `{}` does not exist; created, kubeconfig written (user-only), every node Ready within timeouts.cluster", d.name),
            Action::CreateCluster,
        ),
        (ClusterState::Present { .. }, rec) if rec.as_deref() != Some(d.cluster_digest.as_str()) && opts.recreate => (
            Kind::Recreate,
            match rec {
                Some(_) => "--recreate: the cluster was built from a different kind-config.yaml or node image; it is deleted with its data and created again".to_string(),
                None => "--recreate: devenv has no record of how this cluster was built; it is deleted with its data and created again".to_string(),
            },
            Action::RecreateCluster,
        ),
        (ClusterState::Present { .. }, _) if opts.recreate => (
            Kind::Recreate,
            "--recreate: deleted with its data and created again, although its configuration is unchanged".to_string(),
            Action::RecreateCluster,
        ),
        (ClusterState::Present { .. }, _) if !stopped.is_empty() => (
            Kind::Start,
            format!("node container(s) {} have exited (after a Docker or host restart?); devenv starts them", stopped.join(", ")),
            Action::StartCluster,
        ),
        (ClusterState::Present { .. }, Some(rec)) if rec == d.cluster_digest => (
            Kind::Keep,
            "running, built from the same configuration and node image".to_string(),
            Action::Nothing,
        ),
        (ClusterState::Present { .. }, Some(_)) => {
            notes.push(format!(
                "cluster `{}` was built from a different kind-config.yaml or node image than the current one; it is kept. Run `devenv up --recreate` to rebuild it (this deletes its data).",
                d.name
            ));
            (Kind::Keep, "running; its configuration differs from the files (see the note below) and is kept until --recreate".to_string(), Action::Nothing)
        }
        (ClusterState::Present { .. }, None) => (
            Kind::Keep,
            "running; devenv has not recorded how it was built, so it is adopted as it is".to_string(),
            Action::Nothing,
        ),
    };
    let fresh = matches!(cluster_kind, Kind::Create | Kind::Recreate);
    steps.push(Step {
        id: "cluster".into(),
        kind: cluster_kind,
        target: format!("cluster {}", d.name),
        reason: cluster_reason,
        deps: vec![],
        action,
    });

    // 2. The kubeconfig devenv keeps for the environment (a create writes its own).
    if !fresh && !o.kubeconfig_present {
        steps.push(Step {
            id: "kubeconfig".into(),
            kind: Kind::Create,
            target: "kubeconfig".into(),
            reason: "missing from devenv's state directory".into(),
            deps: vec!["cluster".into()],
            action: Action::WriteKubeconfig,
        });
    } else if !fresh {
        steps.push(Step {
            id: "kubeconfig".into(),
            kind: Kind::Keep,
            target: "kubeconfig".into(),
            reason: "present in devenv's state directory".into(),
            deps: vec!["cluster".into()],
            action: Action::Nothing,
        });
    }

    // 3. Components removed from the configuration, if devenv installed them.
    for (name, namespace, why) in &d.switched_off {
        let key = format!("component.{name}");
        let installed = !fresh && o.releases.iter().any(|r| &r.name == name && &r.namespace == namespace);
        if installed && recorded(&key).is_some() {
            steps.push(Step {
                id: format!("remove-{name}"),
                kind: Kind::Delete,
                target: format!("release {name}"),
                reason: format!("{why}; devenv installed it, so devenv removes it"),
                deps: vec!["cluster".into(), "kubeconfig".into()],
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
                Kind::Keep,
                format!("all {} image(s) are on every node, by ID", d.images.len()),
                Action::Nothing,
            ),
            Some(m) if !fresh => (
                Kind::Run,
                format!("{} not on every node, or rebuilt since it was loaded", m.join(", ")),
                Action::LoadImages,
            ),
            _ => (
                Kind::Run,
                format!("load {} into every node", d.images.join(", ")),
                Action::LoadImages,
            ),
        };
        steps.push(Step {
            id: "images".into(),
            kind,
            target: format!("{} image(s)", d.images.len()),
            reason,
            deps: vec!["cluster".into(), "kubeconfig".into()],
            action,
        });
    }

    // 5. Components, concurrently where nothing orders them.
    for (i, c) in d.components.iter().enumerate() {
        let version = c.chart.version.clone().unwrap_or_else(|| "local".into());
        let target = format!("{} {} ({})", c.name, version, c.chart.chart);
        let rel = o
            .releases
            .iter()
            .find(|r| r.name == c.name && r.namespace == c.namespace);
        let rec = recorded(&format!("component.{}", c.name));
        let (kind, reason, action) = match rel {
            _ if fresh => (
                Kind::Create,
                "installed into the new cluster".to_string(),
                Action::Install(i),
            ),
            None => (
                Kind::Create,
                format!("not installed in namespace {}", c.namespace),
                Action::Install(i),
            ),
            Some(r) if r.status.starts_with("pending-") || r.status == "uninstalling" => (
                Kind::Recover,
                format!(
                    "left `{}` by an interrupted run; devenv clears it, then installs",
                    r.status
                ),
                Action::RecoverAndInstall(r.clone(), i),
            ),
            Some(r) if r.status == "failed" => (
                Kind::Upgrade,
                "its last helm operation failed; devenv installs it again".to_string(),
                Action::Install(i),
            ),
            Some(_) if rec.as_deref() == Some(c.digest.as_str()) => (
                Kind::Keep,
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
                (Kind::Upgrade, reason, Action::Install(i))
            }
        };
        let mut deps = vec!["cluster".to_string(), "kubeconfig".to_string()];
        deps.extend(
            c.after
                .iter()
                .filter(|a| d.components.iter().any(|x| &x.name == *a))
                .cloned(),
        );
        if !d.images.is_empty() && c.uses_images {
            deps.push("images".into());
        }
        steps.push(Step {
            id: c.name.clone(),
            kind,
            target,
            reason,
            deps,
            action,
        });
    }

    // 6. The shared data volume: made of records only, so the no-op path reads nothing more.
    let mut shared_waits = false;
    let shared_rec = recorded("volume.shared-data");
    if let Some(sh) = &d.shared {
        let mounted = fresh
            || match recorded("mounts") {
                Some(m) => m.split(',').any(|x| x == sh.mount),
                None => recorded("cluster").as_deref() == Some(d.cluster_digest.as_str()),
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
                Kind::Keep,
                "waits for `devenv up --recreate`: the nodes lack its mount (see the note below)".to_string(),
                Action::Nothing,
            )
        } else if current && !fresh {
            (
                Kind::Keep,
                format!("claim {}/{} bound to the shared directory", v.namespace, v.claim),
                Action::Nothing,
            )
        } else if shared_rec.is_some() && !fresh {
            (
                Kind::Upgrade,
                "its claim, size or directory changed in devenv.yaml; the volume is made again (files stay)"
                    .to_string(),
                Action::EnsureShared,
            )
        } else {
            (
                Kind::Create,
                format!(
                    "ReadWriteMany claim {}/{} on the shared directory, in every node at {}",
                    v.namespace, v.claim, v.node_path
                ),
                Action::EnsureShared,
            )
        };
        steps.push(Step {
            id: "shared-data".into(),
            kind,
            target: format!("volume {}", v.name),
            reason,
            deps: vec!["cluster".into(), "kubeconfig".into()],
            action,
        });
    } else if let (Some(why), Some(rec), false) = (&d.shared_off, &shared_rec, fresh) {
        let r = desired::SharedRecord::parse(rec);
        let (pv, namespace, claim) = (r.pv, r.namespace, r.claim);
        steps.push(Step {
            id: "remove-shared-data".into(),
            kind: Kind::Delete,
            target: format!("volume {pv}"),
            reason: format!("{why}; its claim and volume are removed, the files on this machine stay"),
            deps: vec!["cluster".into(), "kubeconfig".into()],
            action: Action::RemoveShared {
                pv: pv.to_string(),
                namespace: namespace.to_string(),
                claim: claim.to_string(),
            },
        });
    }

    // 7. Smoke tests, last.
    if d.smoke {
        let changed = steps.iter().any(|s| s.kind.mutates());
        let passed_before = recorded("smoke").as_deref() == Some(d.smoke_digest.as_str());
        let mut checks: Vec<&str> = d.probes.iter().map(|p| p.name.as_str()).collect();
        if d.metrics_check {
            checks.push("the metrics API");
        }
        if d.shared.is_some() && !shared_waits {
            checks.push("the shared volume");
        }
        let what = if checks.is_empty() {
            "no endpoints".to_string()
        } else {
            checks.join(", ")
        };
        let (kind, reason, action) = if changed || !passed_before {
            (Kind::Run, format!("connect from this machine to {what}"), Action::Smoke)
        } else {
            (
                Kind::Keep,
                "nothing changed since they last passed; `devenv test` runs them again".to_string(),
                Action::Nothing,
            )
        };
        let deps = steps
            .iter()
            .filter(|s| s.id != "cluster")
            .map(|s| s.id.clone())
            .collect();
        steps.push(Step {
            id: "smoke".into(),
            kind,
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

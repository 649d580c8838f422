//! The planner on its own: desired (from real config files) + an observed environment -> steps.
//! Pure functions; no world is involved.

use devenv::config::{self, Overrides};
use devenv::plan::{self, Action, Change, Desired, Observed, Options, Selection};
use devenv::world::{Applied, ClusterState, NodeState, ReleaseInfo};
use std::path::Path;

fn desired_in(dir: &Path, sel: Selection) -> Desired {
    let c = config::load(dir, Path::new("."), &Overrides::default()).unwrap();
    Desired::from_config(&c, &sel).unwrap()
}

fn defaults() -> Desired {
    let d = crate::common::TempDir::new("plan");
    desired_in(d.path(), Selection::default())
}

fn absent() -> Observed {
    Observed {
        cluster: ClusterState::Absent,
        applied: None,
        others: vec![],
        releases: vec![],
        kubeconfig_present: false,
        images_missing: None,
        half_made: false,
    }
}

/// What a successful `up` leaves behind.
fn converged(d: &Desired) -> Observed {
    let mut entries = std::collections::BTreeMap::new();
    entries.insert("cluster".into(), d.cluster_digest.clone());
    entries.insert("smoke".into(), d.smoke_digest.clone());
    entries.insert("image-cache".into(), d.cache_digest.clone());
    let mut releases = vec![];
    for c in &d.components {
        entries.insert(format!("component.{}", c.name), c.digest.clone());
        releases.push(ReleaseInfo {
            name: c.name.clone(),
            namespace: c.namespace.clone(),
            status: "deployed".into(),
            chart: format!("{}-{}", c.chart.chart, c.chart.version.clone().unwrap()),
        });
    }
    Observed {
        cluster: ClusterState::Present {
            nodes: vec![NodeState {
                name: format!("{}-control-plane", d.name),
                role: "control-plane".into(),
                running: true,
            }],
        },
        applied: Some(Applied { entries }),
        others: vec![],
        releases,
        kubeconfig_present: true,
        images_missing: Some(vec![]),
        half_made: false,
    }
}

fn kinds(p: &plan::Plan) -> Vec<(String, Change)> {
    p.steps.iter().map(|s| (s.id.to_string(), s.change)).collect()
}

#[test]
fn a_fresh_environment_creates_everything_then_runs_the_smoke_tests() {
    let d = defaults();
    let p = plan::plan(&d, &absent(), Options::default());
    let ids: Vec<String> = p.steps.iter().map(|s| s.id.to_string()).collect();
    // The create writes the kubeconfig and waits for the nodes itself: no separate step.
    assert_eq!(
        ids,
        [
            "cluster",
            "image-cache",
            "ingress-nginx",
            "postgresql",
            "redis",
            "smoke"
        ]
    );
    assert_eq!(p.steps[0].change, Change::Create);
    assert_eq!(
        p.steps[1].change,
        Change::Run,
        "the pinned images, loaded from this machine"
    );
    assert!(p.steps[2..5].iter().all(|s| s.change == Change::Create));
    assert_eq!(p.steps[5].change, Change::Run);
    // Components wait only for the cluster (and its kubeconfig) and their images, not for each other.
    for c in ["ingress-nginx", "postgresql", "redis"] {
        assert_eq!(
            p.steps.iter().find(|s| s.id == c).unwrap().deps,
            vec![plan::StepId::Cluster, plan::StepId::Kubeconfig, plan::StepId::Cache]
        );
    }
    assert!(p.steps.iter().all(|s| !s.reason.is_empty()));
}

#[test]
fn a_converged_environment_plans_no_change() {
    let d = defaults();
    let p = plan::plan(&d, &converged(&d), Options::default());
    assert_eq!(p.changes(), 0, "{:?}", kinds(&p));
    assert!(p.notes.is_empty());
}

#[test]
fn a_changed_cluster_config_is_kept_and_explained_unless_recreate() {
    let d = defaults();
    let mut o = converged(&d);
    o.applied
        .as_mut()
        .unwrap()
        .entries
        .insert("cluster".into(), "older".into());
    let p = plan::plan(&d, &o, Options::default());
    assert_eq!(p.steps[0].change, Change::Keep);
    assert!(p.notes[0].contains("--recreate"), "{:?}", p.notes);
    let p = plan::plan(
        &d,
        &o,
        Options {
            recreate: true,
            ..Default::default()
        },
    );
    assert_eq!(p.steps[0].change, Change::Recreate);
    assert!(p.steps[0].reason.contains("different kind-config.yaml"));
    // Everything in a recreated cluster is installed again.
    assert!(
        p.steps
            .iter()
            .filter(|s| ["ingress-nginx", "postgresql", "redis"].contains(&s.id.to_string().as_str()))
            .all(|s| s.change == Change::Create)
    );
}

#[test]
fn a_release_left_pending_by_an_interrupted_run_is_recovered() {
    let d = defaults();
    let mut o = converged(&d);
    o.releases.iter_mut().find(|r| r.name == "postgresql").unwrap().status = "pending-install".into();
    let p = plan::plan(&d, &o, Options::default());
    let s = p.steps.iter().find(|s| s.id == "postgresql").unwrap();
    assert_eq!(s.change, Change::Recover);
    assert!(matches!(s.action, Action::RecoverAndInstall(..)));
    assert!(s.reason.contains("pending-install"));
}

#[test]
fn exited_nodes_are_started_not_recreated() {
    let d = defaults();
    let mut o = converged(&d);
    o.cluster = ClusterState::Present {
        nodes: vec![NodeState {
            name: "devenv-control-plane".into(),
            role: "control-plane".into(),
            running: false,
        }],
    };
    let p = plan::plan(&d, &o, Options::default());
    assert_eq!(p.steps[0].change, Change::Start);
    assert!(p.steps[0].reason.contains("devenv-control-plane"));
}

#[test]
fn a_changed_values_file_upgrades_only_that_component() {
    let dir = crate::common::TempDir::new("plan-values");
    let before = desired_in(dir.path(), Selection::default());
    let o = converged(&before);
    dir.write(
        "helm-values/redis.yaml",
        "service:\n  type: NodePort\nresources:\n  requests:\n    memory: 64Mi\n",
    );
    let after = desired_in(dir.path(), Selection::default());
    let p = plan::plan(&after, &o, Options::default());
    let changed: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.change.mutates())
        .map(|s| s.id.to_string())
        .collect();
    assert_eq!(changed, ["redis", "smoke"]);
    assert!(
        p.steps
            .iter()
            .find(|s| s.id == "redis")
            .unwrap()
            .reason
            .contains("helm-values/redis.yaml")
    );
}

#[test]
fn switching_the_ingress_removes_the_old_one_devenv_installed() {
    let dir = crate::common::TempDir::new("plan-ingress");
    let before = desired_in(dir.path(), Selection::default());
    let o = converged(&before);
    dir.write("devenv.yaml", "ingress: traefik\n");
    let after = desired_in(dir.path(), Selection::default());
    let p = plan::plan(&after, &o, Options::default());
    let k = kinds(&p);
    assert!(k.contains(&("remove-ingress-nginx".into(), Change::Delete)), "{k:?}");
    assert!(k.contains(&("traefik".into(), Change::Create)), "{k:?}");
}

#[test]
fn only_and_skip_limit_the_components_and_name_typos() {
    let dir = crate::common::TempDir::new("plan-only");
    let d = desired_in(
        dir.path(),
        Selection {
            only: vec!["postgresql".into()],
            no_test: true,
            ..Default::default()
        },
    );
    let p = plan::plan(&d, &absent(), Options::default());
    let ids: Vec<String> = p.steps.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, ["cluster", "image-cache", "postgresql"]);
    let c = config::load(dir.path(), Path::new("."), &Overrides::default()).unwrap();
    let err = Desired::from_config(
        &c,
        &Selection {
            skip: vec!["postgres".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert_eq!(err.help(), Some("did you mean `postgresql`?"));
}

#[test]
fn smoke_tests_rerun_when_they_have_not_passed_since_the_last_change() {
    let d = defaults();
    let mut o = converged(&d);
    o.applied.as_mut().unwrap().entries.remove("smoke");
    let p = plan::plan(&d, &o, Options::default());
    let k = kinds(&p);
    assert_eq!(k.last().unwrap(), &("smoke".to_string(), Change::Run));
    assert_eq!(p.changes(), 1);
}

#[test]
fn a_versions_file_from_before_the_optional_components_takes_their_built_in_pins() {
    let d = crate::common::TempDir::new("plan-old-versions");
    let builtin = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/versions.yaml")).unwrap();
    let cut = builtin
        .find("  # Optional components")
        .expect("the built-in file has them");
    let rest = &builtin[cut..];
    let end = rest.find("\n\n").map(|i| cut + i).unwrap_or(builtin.len());
    let old = format!("{}{}", &builtin[..cut], &builtin[end..]);
    assert!(!old.contains("kube-prometheus-stack"));
    d.write("versions.yaml", &old);
    let des = desired_in(
        d.path(),
        Selection {
            with: vec!["monitoring".into(), "metrics-server".into()],
            ..Selection::default()
        },
    );
    let chart = |n: &str| {
        let c = &des.components.iter().find(|c| c.name == n).unwrap().chart;
        (c.chart.clone(), c.version.clone().unwrap())
    };
    assert_eq!(chart("monitoring"), ("kube-prometheus-stack".into(), "88.2.0".into()));
    assert_eq!(chart("metrics-server"), ("metrics-server".into(), "3.13.0".into()));
    // Off by default: nothing optional is installed, and the plan names why each is off.
    let plain = defaults();
    assert!(
        !plain
            .components
            .iter()
            .any(|c| c.name == "monitoring" || c.name == "metrics-server")
    );
    assert!(plain.shared.is_none() && !plain.metrics_check);
    assert!(
        plain
            .switched_off
            .iter()
            .any(|(n, _, why)| n == "monitoring" && why.starts_with("not switched on"))
    );
}

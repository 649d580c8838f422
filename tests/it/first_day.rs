//! What a new user hits on the first day once the happy path is behind them (issue 20), on the
//! SIMULATED world (src/sim/: no cluster, chart or container is involved) unless a test says
//! otherwise.

use crate::common::Lab;

const NO_BUILTINS: &str = "ingress: none\npostgresql:\n  enabled: false\nredis:\n  enabled: false\n";

#[test]
fn sim_an_environment_of_no_builtin_component_comes_up_and_plans_no_checks() {
    let lab = Lab::new("bare");
    lab.project.write("devenv.yaml", NO_BUILTINS);
    let plan = lab.run(&["plan", "-o", "json"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        !plan.stdout.contains("\"id\":\"smoke\""),
        "nothing to check, so no smoke step: {plan:?}"
    );
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(lab.world.state().clusters.len(), 1, "the cluster stays: {out:?}");
    assert!(!out.stderr.contains("rolled back"), "{out:?}");
    let again = lab.run(&["up"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("nothing to do"), "{again:?}");
}

#[test]
fn sim_the_smoke_step_waits_for_the_cluster_it_checks() {
    let lab = Lab::new("smokedeps");
    let plan = lab.run(&["plan", "-o", "json"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let smoke = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "smoke")
        .expect("a smoke step");
    assert!(
        smoke["deps"].as_array().unwrap().iter().any(|d| d == "cluster"),
        "smoke depends on the cluster step: {smoke}"
    );
}

#[test]
fn sim_up_after_a_failing_test_runs_the_checks_again() {
    let lab = Lab::new("retest");
    assert_eq!(lab.run(&["up"]).code, 0);
    lab.world.inject(
        "probe",
        Some("redis"),
        "redis at 127.0.0.1:16379: authentication failed: WRONGPASS",
        1,
    );
    let failed = lab.run(&["test"]);
    assert_eq!(failed.code, 1, "{failed:?}");
    let up = lab.run(&["up"]);
    assert_eq!(up.code, 0, "{up:?}");
    assert!(
        !up.stderr.contains("nothing to do"),
        "a failed run is not a pass: {up:?}"
    );
    assert!(
        up.stderr
            .lines()
            .any(|l| l.contains("redis 127.0.0.1:16379") && l.contains(" ok ")),
        "the checks ran again: {up:?}"
    );
}

#[test]
fn sim_run_ephemeral_names_the_cluster_after_the_configured_name() {
    let lab = Lab::new("ephname");
    lab.project.write("devenv.yaml", "name: shop\n");
    let out = lab.run(&["run", "--ephemeral", "--no-test", "--", "true"]);
    assert_eq!(out.code, 0, "{out:?}");
    let created: Vec<String> = lab
        .world
        .calls()
        .into_iter()
        .filter(|c| c.op == "cluster.create")
        .map(|c| c.target)
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    let name = &created[0];
    let suffix = name
        .strip_prefix("shop-")
        .unwrap_or_else(|| panic!("{name}: not shop-<6 hex>"));
    assert!(
        suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    assert!(lab.world.state().clusters.is_empty(), "torn down: {out:?}");
}

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
    let plan = crate::common::event(&plan.stdout, "plan");
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

fn row<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row {name}: {status}"))
}

#[test]
fn sim_a_failed_install_lets_its_running_siblings_finish_and_status_tells_which_failed_and_why() {
    let lab = Lab::new("why");
    lab.world.set_latency("helm.upgrade_install:postgresql", 400);
    lab.world.inject(
        "helm.upgrade_install",
        Some("redis"),
        "Error: INSTALLATION FAILED: timed out waiting for the condition",
        1,
    );
    let up = lab.run(&["up"]);
    assert_eq!(up.code, 1, "{up:?}");
    assert!(
        up.stderr
            .contains("error: redis: Error: INSTALLATION FAILED: timed out"),
        "the error leads with the component and the cause: {up:?}"
    );
    // PostgreSQL's install was running when redis failed: it finished, ready and recorded.
    let status = lab.run(&["status"]);
    assert_eq!(status.code, 1, "{status:?}");
    let pg = row(&status.stdout, "postgresql");
    assert!(pg.contains("deployed") && pg.contains("current"), "{status:?}");
    let redis = row(&status.stdout, "redis");
    assert!(redis.contains("failed") && redis.contains("unfinished"), "{status:?}");
    assert!(
        status.stdout.contains("last failures:")
            && status.stdout.contains("redis (`devenv up`, ")
            && status
                .stdout
                .contains("INSTALLATION FAILED: timed out waiting for the condition"),
        "status says why: {status:?}"
    );
    assert!(
        status
            .stderr
            .contains("redis is failed (last `up`: Error: INSTALLATION FAILED"),
        "{status:?}"
    );
    assert!(
        !status.stderr.contains("postgresql"),
        "only redis is unhealthy: {status:?}"
    );
    let json = crate::common::event(&lab.run(&["status", "-o", "json"]).stdout, "status");
    let r = json["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "redis")
        .unwrap();
    assert_eq!(r["record"], "unfinished");
    assert!(
        r["last_failure"]["message"]
            .as_str()
            .unwrap()
            .contains("INSTALLATION FAILED")
    );

    // The next up converges and the failure is gone from status.
    assert_eq!(lab.run(&["up"]).code, 0);
    let status = lab.run(&["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(!status.stdout.contains("last failures"), "{status:?}");
}

#[test]
fn sim_status_reports_a_failed_smoke_run_until_a_run_passes() {
    let lab = Lab::new("smokewhy");
    assert_eq!(lab.run(&["up"]).code, 0);
    assert!(lab.run(&["status"]).stdout.contains("smoke tests: passed"));
    lab.world.inject(
        "probe",
        Some("redis"),
        "redis at 127.0.0.1:16379: authentication failed: WRONGPASS",
        1,
    );
    assert_eq!(lab.run(&["test"]).code, 1);
    let status = lab.run(&["status"]);
    assert_eq!(status.code, 1, "a failed smoke run is not healthy: {status:?}");
    assert!(status.stdout.contains("smoke tests: failed"), "{status:?}");
    assert!(
        status.stderr.contains("the last smoke run (`devenv test`) failed") && status.stderr.contains("WRONGPASS"),
        "{status:?}"
    );
    assert_eq!(lab.run(&["test"]).code, 0);
    let status = lab.run(&["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.contains("smoke tests: passed"), "{status:?}");
}

#[test]
fn sim_down_with_a_misspelt_name_leaves_no_state_behind() {
    let lab = Lab::new("typo");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let out = lab.run(&["-n", "devnev", "down"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("clusters here: devenv"), "{out:?}");
    assert!(
        !lab.state.path().join("devnev").exists(),
        "a state directory for the misspelt name was left behind"
    );
    assert!(lab.state.path().join("devenv").exists());
}

#[test]
fn sim_the_ingress_nginx_retirement_notice_is_shown_once_per_machine_not_per_ephemeral_run() {
    let lab = Lab::new("notice");
    let first = lab.run(&["run", "--ephemeral", "--no-test", "--", "true"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stderr.contains("ingress-nginx was retired upstream"), "{first:?}");
    let second = lab.run(&["run", "--ephemeral", "--no-test", "--", "true"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        !second.stderr.contains("retired upstream"),
        "a second ephemeral environment repeats the notice: {second:?}"
    );
}

#[test]
fn sim_env_leaves_out_the_variables_of_a_component_whose_install_failed() {
    let lab = Lab::new("envfail");
    lab.world.inject(
        "helm.upgrade_install",
        Some("monitoring"),
        "Error: INSTALLATION FAILED: timed out waiting for the condition",
        1,
    );
    let up = lab.run(&["up", "--with", "monitoring", "--no-test"]);
    assert_eq!(up.code, 1, "{up:?}");
    let env = lab.run(&["env"]);
    assert_eq!(env.code, 0, "{env:?}");
    assert!(env.stdout.contains("export DATABASE_URL="), "{env:?}");
    assert!(
        !env.stdout.contains("GRAFANA") && !env.stdout.contains("PROMETHEUS"),
        "variables of a monitoring that is not there: {env:?}"
    );
    assert!(
        env.stderr.contains("left out: monitoring's last `devenv up` failed"),
        "{env:?}"
    );
    // Once it installs, they are back.
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    assert!(lab.run(&["env"]).stdout.contains("GRAFANA_URL"));
}

#[test]
fn sim_kubectl_too_far_from_the_clusters_kubernetes_is_warned_about() {
    let lab = Lab::new("skew");
    lab.world
        .with(|s| s.host.tool_versions.insert("kubectl".into(), "1.32.4".into()))
        .unwrap();
    let up = lab.run(&["up", "--no-test"]);
    assert_eq!(up.code, 0, "{up:?}");
    assert!(
        up.stderr
            .contains("kubectl 1.32.4 is 4 minor versions away from the cluster's Kubernetes v1.36"),
        "{up:?}"
    );
    let status = lab.run(&["status"]);
    assert!(
        status
            .stderr
            .contains("kubectl 1.32.4 is 4 minor versions away from the cluster's Kubernetes v1.36.4"),
        "against the live server: {status:?}"
    );
    let doctor = lab.run(&["doctor"]);
    assert!(
        doctor.stderr.contains("kubectl skew") || doctor.stdout.contains("kubectl skew"),
        "{doctor:?}"
    );
    // One minor version apart is supported.
    lab.world
        .with(|s| s.host.tool_versions.insert("kubectl".into(), "1.35.0".into()))
        .unwrap();
    let status = lab.run(&["status"]);
    assert!(!status.stderr.contains("minor versions away"), "{status:?}");
}

#[test]
fn sim_a_storage_size_change_the_statefulset_refuses_gets_help_about_the_claim_and_the_data() {
    let lab = Lab::new("forbidden");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    // The API server's own words (helm prints them after `Error: UPGRADE FAILED:`).
    lab.world.inject(
        "helm.upgrade_install",
        Some("postgresql"),
        "Error: UPGRADE FAILED: cannot patch \"postgresql\" with kind StatefulSet: StatefulSet.apps \"postgresql\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        1,
    );
    lab.project
        .write("helm-values/postgresql.yaml", "storage:\n  requestedSize: 20Gi\n");
    let up = lab.run(&["up", "--no-test"]);
    assert_eq!(up.code, 1, "{up:?}");
    let help = up.stderr.lines().find(|l| l.starts_with("help:")).unwrap_or_default();
    assert!(
        help.contains("the claim must be made anew")
            && help.contains("helm-values/postgresql.yaml")
            && help.contains("--recreate")
            && help.contains("PostgreSQL's data stay in"),
        "{up:?}"
    );
}

#[test]
fn sim_down_and_recreate_say_the_same_thing_about_what_is_kept_and_lost() {
    let lab = Lab::new("fate");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let data = lab.state.path().join("devenv/data");
    let fate = format!(
        "PostgreSQL's data stay in {}; Redis's data and everything else in the cluster is lost",
        data.display()
    );
    let recreate = lab.run(&["up", "--recreate", "--no-test"]);
    assert_eq!(recreate.code, 2, "no terminal, no --yes: {recreate:?}");
    assert!(recreate.stderr.contains(&fate), "{recreate:?}");
    let down = lab.run(&["down"]);
    assert_eq!(down.code, 0, "{down:?}");
    assert!(
        down.stderr.contains(&format!("delete cluster devenv ({fate})")),
        "{down:?}"
    );
}

#[test]
fn the_help_of_down_and_up_says_what_purge_and_recreate_delete() {
    let state = crate::common::TempDir::new("helptext");
    let down = crate::common::devenv(state.path(), state.path())
        .args(["down", "--help"])
        .output();
    assert!(
        down.stdout
            .contains("PostgreSQL's data and the shared files stay on this machine unless --purge")
            && down.stdout.contains("the data kept on this machine"),
        "{down:?}"
    );
    let up = crate::common::devenv(state.path(), state.path())
        .args(["up", "--help"])
        .output();
    assert!(
        up.stdout.contains("everything in it is lost but what devenv keeps on")
            && !up.stdout.contains("(its data is lost)"),
        "{up:?}"
    );
}

#[test]
fn sim_the_junit_suite_time_is_the_wall_time_of_checks_that_ran_together() {
    let lab = Lab::new("junittime");
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    // Each check takes 300 ms; they run at the same time.
    lab.world.set_latency("probe", 300);
    let report = lab.state.path().join("smoke.xml");
    let t = std::time::Instant::now();
    let out = lab.run(&["test", "--junit", &report.display().to_string()]);
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(out.code, 0, "{out:?}");
    let xml = std::fs::read_to_string(&report).unwrap();
    let attr = |s: &str| -> f64 {
        let i = s.find("time=\"").unwrap() + 6;
        s[i..].split('"').next().unwrap().parse().unwrap()
    };
    let suite = attr(xml.lines().find(|l| l.starts_with("<testsuite")).unwrap());
    let sum: f64 = xml.lines().filter(|l| l.contains("<testcase")).map(attr).sum();
    assert!(sum >= 0.9, "three probes of 300 ms: {xml}");
    assert!(
        suite < sum * 0.8 && suite <= wall + 0.01,
        "suite {suite}, checks {sum}, wall {wall}: {xml}"
    );
}

//! Each component as its real chart behaves, in-process on the SIMULATED world (src/sim/:
//! no cluster, chart or container is involved). The simulated helm renders the values files
//! devenv writes through chart models that `tests/charts.rs` holds to real Helm renders of the
//! pinned charts, so what these tests see of a chart (labels, Service types, images, Ingresses,
//! the user PostgreSQL runs as) is what the real chart makes. PostgreSQL's data directory is a
//! real directory on this machine, judged as the kubelet would judge it.

use crate::common::Lab;
use devenv::config::names::ImageRef;
use std::os::unix::fs::PermissionsExt;

/// devenv.yaml for these tests: a component that never gets ready fails in seconds, not after
/// the default five minutes.
fn devenv_yaml(extra: &str) -> String {
    format!("timeouts:\n  component: 5s\n{extra}")
}

fn full(image: &str) -> String {
    ImageRef::parse(image).unwrap().full()
}

#[test]
fn sim_postgresql_can_create_its_data_directory_in_the_one_devenv_makes_for_it() {
    let lab = Lab::new("comp-pgdata");
    lab.project.write("devenv.yaml", &devenv_yaml(""));
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    // devenv made the volume's directory before the volume, open to the chart's uid 999 (a
    // directory the kubelet makes is root's with mode 0755, where uid 999 cannot create PGDATA).
    let dir = lab.state.path().join("devenv/data/postgresql");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o777, "{}", dir.display());
    // The simulated server created PGDATA (`pg`, from the chart's settings.pgDir) in it.
    assert!(dir.join("pg").is_dir());
    // And the volume requires the directory to exist instead of letting the kubelet make it.
    let cluster = &lab.world.state().clusters["devenv"];
    assert_eq!(cluster.volume_types["devenv-data/postgresql-data"], "Directory");
    lab.world.db_write("devenv", "kept");
    assert_eq!(lab.run(&["down"]).code, 0);
    assert_eq!(lab.run(&["up"]).code, 0);
    assert_eq!(lab.world.db_rows("devenv"), vec!["kept".to_string()]);
}

#[test]
fn sim_a_data_directory_left_unwritable_is_made_writable_again_by_the_next_install() {
    let lab = Lab::new("comp-pgdata-ro");
    lab.project.write("devenv.yaml", &devenv_yaml(""));
    assert_eq!(lab.run(&["up"]).code, 0);
    assert_eq!(lab.run(&["down"]).code, 0);
    // As a kubelet would have left it: mode 0755, which uid 999 cannot create PGDATA in.
    let dir = lab.state.path().join("devenv/data/postgresql");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o777);
}

#[test]
fn sim_traefik_is_waited_for_by_the_label_its_chart_gives_and_a_broken_pod_fails_its_step() {
    let lab = Lab::new("comp-traefik-ready");
    lab.project.write("devenv.yaml", &devenv_yaml("ingress: traefik\n"));
    lab.world.break_pods(
        "traefik",
        devenv::sim::PodProblem {
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image \"docker.io/library/traefik:v3.7.11\"".into(),
            image: "docker.io/library/traefik:v3.7.11".into(),
            log: String::new(),
        },
    );
    let out = lab.run(&["up", "--timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:?}");
    // The traefik step itself fails (not the smoke run later): devenv found its Deployment by
    // `app.kubernetes.io/instance=traefik-traefik` and saw the pod.
    assert!(
        out.stderr.contains("traefik (namespace traefik) is not ready after 1s")
            && out.stderr.contains("ImagePullBackOff"),
        "{out:?}"
    );
    let waits: Vec<_> = lab
        .world
        .calls()
        .into_iter()
        .filter(|c| c.op == "kube.wait_ready")
        .collect();
    assert!(waits.iter().any(|c| c.target == "traefik"), "{waits:?}");
}

#[test]
fn sim_traefik_serves_the_smoke_run_through_a_nodeport_service() {
    let lab = Lab::new("comp-traefik");
    lab.project.write("devenv.yaml", &devenv_yaml("ingress: traefik\n"));
    let out = lab.run(&["up"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("http 127.0.0.1:80 ") && l.contains(" ok ")),
        "{out:?}"
    );
    let rendered = &lab.world.state().clusters["devenv"].rendered["traefik"];
    assert_eq!(rendered.services[0].type_, "NodePort", "{rendered:?}");
    assert_eq!(rendered.workloads[0].instance, "traefik-traefik");
    // The run's Ingress named Traefik's class.
    assert!(lab.world.calls().iter().any(|c| c.op == "kube.smoke_echo"));
}

#[test]
fn sim_grafana_gets_its_ingress_and_every_generated_values_file_has_each_key_once() {
    let lab = Lab::new("comp-grafana");
    lab.project.write("devenv.yaml", &devenv_yaml(""));
    let out = lab.run(&["up", "--with", "monitoring,metrics-server"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("grafana 127.0.0.1:80 ") && l.contains(" ok ")),
        "{out:?}"
    );
    let rendered = &lab.world.state().clusters["devenv"].rendered["monitoring"];
    assert!(
        rendered
            .ingresses
            .iter()
            .any(|i| i.hosts == ["grafana.devenv.localhost"] && i.class.as_deref() == Some("nginx")),
        "{rendered:?}"
    );
    // Parsed the strict way (a key given twice is an error, where helm would keep the last).
    let dir = lab.state.path().join("devenv/values");
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.to_string_lossy().ends_with(".devenv.yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            serde_saphyr::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
            files += 1;
        }
    }
    assert_eq!(files, 5, "ingress-nginx, postgresql, redis, monitoring, metrics-server");
}

#[test]
fn sim_every_image_versions_yaml_pins_is_the_image_that_runs() {
    for extra in ["", "ingress: traefik\n"] {
        let lab = Lab::new("comp-images");
        lab.project.write("devenv.yaml", &devenv_yaml(extra));
        let out = lab.run(&["up", "--with", "metrics-server", "--no-test"]);
        assert_eq!(out.code, 0, "{out:?}");
        let config = devenv::config::load(lab.project.path(), std::path::Path::new("."), &Default::default()).unwrap();
        let state = lab.world.state();
        let cluster = &state.clusters["devenv"];
        let v = &config.versions;
        let pins = [
            if extra.is_empty() {
                ("ingress-nginx", &v.ingress_nginx)
            } else {
                ("traefik", &v.traefik)
            },
            ("postgresql", &v.postgresql),
            ("redis", &v.redis),
            ("metrics-server", &v.metrics_server),
        ];
        for (release, chart) in pins {
            let r = &cluster.rendered[release];
            let running: Vec<String> = r
                .workloads
                .iter()
                .flat_map(|w| w.images.clone())
                .chain(r.hook_images.clone())
                .map(|i| full(&i))
                .collect();
            assert!(!chart.images.is_empty(), "{release} pins its images");
            for pin in &chart.images {
                assert!(
                    running.contains(&full(pin)),
                    "{release}: pinned {pin}, runs {running:?}"
                );
            }
        }
    }
}

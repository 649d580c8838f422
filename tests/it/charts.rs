//! Contract tests: what devenv assumes of each pinned chart, checked against what REAL Helm
//! rendered from it. `../shared/samples/charts/<chart>-<version>/` holds, per pinned chart, the
//! values devenv handed to helm (`values-devenv-wrote/`), the manifests the Helm Go SDK rendered
//! from exactly those files from the chart's own sources at its pinned tag (`rendered*.yaml`),
//! and the chart's own default values (`defaults.json`); its README says how they were made.
//! These files are read where they are, never copied here.
//!
//! Three checks, each against a fact:
//! - the simulated world's chart models render what real Helm rendered, from the same values
//!   (so the simulated world, which every `sim_…` test runs on, follows the real charts);
//! - every key devenv sets is one the chart declares (`defaults.json`, or under a free-form map
//!   there), or one a render made with it shows the effect of: helm ignores any other silently;
//! - the objects devenv expects (the selector readiness waits on, the NodePorts kind-config.yaml
//!   maps, the images versions.yaml pins, PostgreSQL's user, PGDATA and claim, the IngressClass,
//!   the Ingress hosts, the in-cluster Service) are what the chart makes from devenv's values:
//!   read from the render when it was made from the values devenv writes today, otherwise from
//!   the chart model that the first check holds to the render.
//!
//! A render made from older values, and a key no render vouches for yet, are listed below: the
//! lists must be exactly what the files show, so a pin or values change without a new render is
//! said, and a new render without updating the lists fails too.
//!
//! Needs `../shared` beside the checkout (CI has it). With CI set its absence fails; elsewhere
//! the tests print NOT RUN.

use devenv::components::ComponentSpec;
use devenv::config::names::ImageRef;
use devenv::plan::{Desired, Selection};
use devenv::sim::charts::{self, Rendered};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Components whose render was made from values other than those devenv writes today (the
/// render's own values are in its `values-devenv-wrote/`): devenv's expectations are checked
/// against the chart model for them, and the model against the render. Each needs a new render
/// from devenv's current values (`devenv up` writes them to the state directory's `values/`).
const RENDERED_FROM_OLDER_VALUES: &[&str] = &[
    // the pinned images (controller and kube-webhook-certgen) are now passed to the chart
    "ingress-nginx",
    // `service.spec.type` instead of `service.type`, and the pinned image
    "traefik",
    // the pinned image (`image.tag`)
    "postgresql",
    "redis",
    "metrics-server",
];

/// Keys devenv sets that neither `defaults.json` nor a render made with them vouches for:
/// (chart directory, key, why devenv sets it anyway). A new render from devenv's values would.
const AWAITING_RENDER: &[(&str, &str, &str)] = &[
    (
        "traefik-41.3.0",
        "image.registry",
        "declared with a null default in the chart's values.yaml (`registry: # @schema type:[string, null]`), which Helm's coalesce drops from defaults.json",
    ),
    (
        "traefik-41.3.0",
        "image.repository",
        "declared with a null default, as image.registry",
    ),
    (
        "traefik-41.3.0",
        "image.tag",
        "declared with a null default, as image.registry",
    ),
];

/// A configuration like a user's: the built-in files, with `devenv.yaml` as given.
fn desired(devenv_yaml: &str) -> Desired {
    let dir = crate::common::TempDir::new("charts-config");
    dir.write("devenv.yaml", devenv_yaml);
    let config =
        devenv::config::load(dir.path(), Path::new("."), &Default::default()).expect("the configuration loads");
    let sel = Selection {
        with: vec!["monitoring".into(), "metrics-server".into()],
        ..Default::default()
    };
    Desired::from_config(&config, &sel).expect("desired")
}

/// Every component devenv installs, in each configuration the renders were made for.
fn components() -> Vec<ComponentSpec> {
    let mut all = desired("").components;
    all.extend(
        desired("ingress: traefik\n")
            .components
            .into_iter()
            .filter(|c| c.name == "traefik"),
    );
    all
}

fn chart_dir(c: &ComponentSpec) -> String {
    format!("{}-{}", c.chart.chart, c.chart.version.as_deref().unwrap_or(""))
}

/// What helm gets from devenv for `c`: its values files in order, merged, the passwords as the
/// renders have them.
fn values_now(c: &ComponentSpec) -> Value {
    let mut v = json!({});
    for s in &c.values {
        devenv::components::values::merge(&mut v, serde_saphyr::from_str(&s.text).unwrap_or(json!({})));
    }
    devenv::components::values::merge(&mut v, c.generated_with(|_| "<generated>".into()));
    v
}

/// One render of a chart and the values files it was made from, in helm's order.
struct Variant {
    render: PathBuf,
    files: Vec<PathBuf>,
}

fn variants(dir: &Path) -> Vec<Variant> {
    let wrote = dir.join("values-devenv-wrote");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&wrote).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let render = entry.unwrap().path();
        let name = render.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".yaml").filter(|n| n.starts_with("rendered")) else {
            continue;
        };
        let mut mine: Vec<PathBuf> = files
            .iter()
            .filter(|f| {
                let f = f.file_name().unwrap().to_string_lossy().to_string();
                if stem == "rendered" {
                    !f.starts_with("rendered")
                } else {
                    f.starts_with(&format!("{stem}."))
                }
            })
            .cloned()
            .collect();
        // The shipped helm-values file first, then the generated `.devenv.yaml`.
        mine.sort_by_key(|f| f.to_string_lossy().ends_with(".devenv.yaml"));
        out.push(Variant { render, files: mine });
    }
    out.sort_by(|a, b| a.render.cmp(&b.render));
    out
}

/// The values a render was made from, as helm merged them (a key given twice: the last wins).
fn values_of(files: &[PathBuf]) -> Value {
    let mut v = json!({});
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut options = serde_saphyr::Options::default();
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
        let x: Value = serde_saphyr::from_str_with_options(&text, options).unwrap();
        devenv::components::values::merge(&mut v, x);
    }
    v
}

/// The passwords as one placeholder, whatever a render's values had for them.
fn without_secrets(c: &ComponentSpec, mut v: Value) -> Value {
    for (pointer, _) in &c.secrets {
        if v.pointer(pointer).is_some() {
            devenv::components::values::set(&mut v, pointer, json!("<generated>"));
        }
    }
    v
}

fn render_facts(v: &Variant, namespace: &str) -> Rendered {
    crate::common::render::facts(&std::fs::read_to_string(&v.render).unwrap(), namespace)
}

#[test]
fn every_pinned_chart_has_a_real_render() {
    let Some(samples) = crate::common::render::samples() else {
        return;
    };
    let mut missing = Vec::new();
    for c in components() {
        let dir = samples.join(chart_dir(&c));
        if !dir.join("rendered.yaml").is_file() || !dir.join("defaults.json").is_file() {
            missing.push(format!(
                "{} pins {} {}, and ../shared/samples/charts has no render of it ({}): render it with devenv's values as that README says",
                c.name,
                c.chart.chart,
                c.chart.version.as_deref().unwrap_or("?"),
                dir.display()
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_simulated_charts_render_what_real_helm_renders_from_the_same_values() {
    let Some(samples) = crate::common::render::samples() else {
        return;
    };
    let mut checked = 0;
    for c in components() {
        let dir = samples.join(chart_dir(&c));
        for v in variants(&dir) {
            let values = values_of(&v.files);
            let model = charts::render(&c.chart.chart, &c.name, &c.namespace, &values)
                .unwrap_or_else(|| panic!("the simulated world has no model of {}", c.chart.chart));
            let real = render_facts(&v, &c.namespace);
            assert_eq!(
                crate::common::render::sorted(model),
                real,
                "the simulated {} chart disagrees with real Helm's {}",
                c.chart.chart,
                v.render.display()
            );
            checked += 1;
        }
    }
    // Every render there is: ingress-nginx, traefik, postgres (two), redis, metrics-server,
    // kube-prometheus-stack (two).
    assert_eq!(checked, 8);
}

/// Whether `path` is declared in a chart's defaults: the key exists, or a map on the way is
/// empty there (free-form: `resources: {}`, `podAnnotations: {}`).
fn declared(defaults: &Value, path: &[String]) -> bool {
    let mut cur = defaults;
    for (i, k) in path.iter().enumerate() {
        match cur.get(k) {
            Some(x) => cur = x,
            None => return i > 0 && cur.as_object().is_some_and(|m| m.is_empty()),
        }
    }
    true
}

#[test]
fn every_key_devenv_sets_is_one_the_chart_reads() {
    let Some(samples) = crate::common::render::samples() else {
        return;
    };
    let mut unvouched = Vec::new();
    for c in components() {
        let name = chart_dir(&c);
        let dir = samples.join(&name);
        let defaults: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("defaults.json")).unwrap()).unwrap();
        let renders: Vec<(Value, String)> = variants(&dir)
            .iter()
            .map(|v| {
                (
                    without_secrets(&c, values_of(&v.files)),
                    std::fs::read_to_string(&v.render).unwrap(),
                )
            })
            .collect();
        let secret_paths: Vec<String> = c.secrets.iter().map(|(p, _)| p.to_string()).collect();
        for (path, value) in devenv::components::values::leaves(&values_now(&c)) {
            if declared(&defaults, &path) {
                continue;
            }
            let pointer = format!("/{}", path.join("/"));
            // A render made with this very value shows it (a password shows as `<generated…`).
            let shown = match &value {
                Value::String(s) if secret_paths.contains(&pointer) => "<generated".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let vouched = renders
                .iter()
                .any(|(vals, text)| vals.pointer(&pointer) == Some(&value) && text.contains(&shown));
            if !vouched {
                unvouched.push((name.clone(), path.join(".")));
            }
        }
    }
    unvouched.sort();
    unvouched.dedup();
    let mut listed: Vec<(String, String)> = AWAITING_RENDER
        .iter()
        .map(|(c, k, _)| (c.to_string(), k.to_string()))
        .collect();
    listed.sort();
    assert_eq!(
        unvouched, listed,
        "keys devenv sets that no defaults.json or render vouches for (helm ignores an unknown key without a word); a new render from devenv's values vouches for them, after which AWAITING_RENDER must drop them"
    );
}

/// What the chart makes from the values devenv writes today: the render itself when it was made
/// from them, else the chart model (held to the render by the test above).
fn made_from_todays_values(samples: &Path, c: &ComponentSpec) -> (Rendered, bool) {
    let now = values_now(c);
    for v in variants(&samples.join(chart_dir(c))) {
        if without_secrets(c, values_of(&v.files)) == now {
            return (render_facts(&v, &c.namespace), true);
        }
    }
    let model = charts::render(&c.chart.chart, &c.name, &c.namespace, &now).expect("a model");
    (crate::common::render::sorted(model), false)
}

#[test]
fn renders_made_from_older_values_are_the_ones_listed() {
    let Some(samples) = crate::common::render::samples() else {
        return;
    };
    let mut older: Vec<String> = components()
        .iter()
        .filter(|c| !made_from_todays_values(&samples, c).1)
        .map(|c| c.name.clone())
        .collect();
    older.sort();
    let mut listed: Vec<String> = RENDERED_FROM_OLDER_VALUES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        older, listed,
        "the renders in ../shared/samples/charts made from values other than devenv's current ones: each needs a new render, and RENDERED_FROM_OLDER_VALUES must list exactly those"
    );
}

fn full(image: &str) -> String {
    ImageRef::parse(image)
        .map(|r| r.full())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn devenv_expects_what_each_chart_makes_from_devenvs_values() {
    let Some(samples) = crate::common::render::samples() else {
        return;
    };
    let kind_config = devenv::config::load(
        crate::common::TempDir::new("charts-kind").path(),
        Path::new("."),
        &Default::default(),
    )
    .unwrap()
    .kind;
    let nginx = desired("");
    for c in components() {
        let (made, _) = made_from_todays_values(&samples, &c);
        let mine: Vec<_> = made.workloads.iter().filter(|w| w.namespace == c.namespace).collect();
        // Readiness waits on every workload of the release, and on something.
        let own = &c.ready[0];
        let label = own
            .selector
            .strip_prefix("app.kubernetes.io/instance=")
            .expect("an instance selector");
        assert!(own.require_some && !mine.is_empty(), "{}: {own:?}", c.name);
        for w in &mine {
            assert_eq!(
                w.instance, label,
                "{}: devenv waits on `{}`, but {} {} is labelled instance={}",
                c.name, own.selector, w.kind, w.name, w.instance
            );
        }
        // Each pinned image is one that runs (as a workload or in an install hook).
        let running: Vec<String> = made
            .workloads
            .iter()
            .flat_map(|w| w.images.clone())
            .chain(made.hook_images.clone())
            .map(|i| full(&i))
            .collect();
        for pin in &c.chart.images {
            assert!(
                running.contains(&full(pin)),
                "{}: versions.yaml pins {pin}, the chart runs {running:?}",
                c.name
            );
        }
        // The NodePorts devenv gives it are on a NodePort Service, and kind-config.yaml maps them.
        let node_ports: Vec<u16> = made
            .services
            .iter()
            .filter(|s| s.type_ == "NodePort")
            .flat_map(|s| s.node_ports.iter().map(|(_, p)| *p))
            .collect();
        for p in c.probes.iter().filter(|p| p.name == "http" || p.name == c.name) {
            let mapping = kind_config
                .mappings
                .iter()
                .find(|m| m.host_port == p.port)
                .unwrap_or_else(|| panic!("{}: no kind-config mapping to host port {}", c.name, p.port));
            assert!(
                node_ports.contains(&mapping.container_port),
                "{}: kind-config.yaml maps host port {} to NodePort {}, the chart's NodePort Services have {node_ports:?}",
                c.name,
                p.port,
                mapping.container_port
            );
        }
        // The in-cluster check resolves a Service the chart makes.
        if let Some((host, _)) = &c.in_cluster {
            let mut parts = host.split('.');
            let (svc, ns) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                made.services.iter().any(|s| s.name == svc && s.namespace == ns),
                "{}: the in-cluster check resolves {host}",
                c.name
            );
        }
    }
    // PostgreSQL: the user devenv makes its data directory for, PGDATA and the claim.
    let pg = nginx.components.iter().find(|c| c.name == "postgresql").unwrap();
    let (made, _) = made_from_todays_values(&samples, pg);
    let server = &made.workloads[0];
    assert_eq!(server.run_as_user, Some(i64::from(devenv::components::postgresql::UID)));
    assert_eq!(server.pgdata.as_deref(), Some(devenv::components::postgresql::PGDATA));
    let (mount, claim) = &server.claims[0];
    assert_eq!(claim, devenv::components::postgresql::CLAIM);
    assert!(
        devenv::components::postgresql::PGDATA.starts_with(&format!("{mount}/")),
        "PGDATA is a directory the server makes inside the claim's mount {mount}"
    );
    assert_eq!(
        pg.volumes[0].claim, *claim,
        "the volume devenv binds is the claim the pod mounts"
    );
    // The ingress controllers serve the class devenv's Ingresses name; monitoring's Ingresses
    // are on the hosts its checks ask for, with that class.
    for (devenv_yaml, controller) in [("", "ingress-nginx"), ("ingress: traefik\n", "traefik")] {
        let d = desired(devenv_yaml);
        let class = d.ingress_class.clone().unwrap();
        let c = d.components.iter().find(|c| c.name == controller).unwrap();
        let (made, _) = made_from_todays_values(&samples, c);
        assert!(made.ingress_classes.contains(&class), "{controller}: {class}");
        let mon = d.components.iter().find(|c| c.name == "monitoring").unwrap();
        let (made, _) = made_from_todays_values(&samples, mon);
        for p in &mon.probes {
            let (devenv::world::Check::Grafana { host_header } | devenv::world::Check::Prometheus { host_header }) =
                &p.check
            else {
                continue;
            };
            assert!(
                made.ingresses
                    .iter()
                    .any(|i| i.hosts.contains(host_header) && i.class.as_deref() == Some(class.as_str())),
                "monitoring with {controller}: no Ingress for {host_header} with class {class}: {:?}",
                made.ingresses
            );
        }
    }
}

#[test]
fn the_real_renders_show_the_defects_devenvs_old_values_had() {
    let Some(samples) = crate::common::render::samples() else {
        return;
    };
    let facts = |dir: &str, file: &str, ns: &str| {
        crate::common::render::facts(&std::fs::read_to_string(samples.join(dir).join(file)).unwrap(), ns)
    };
    // Two top-level `grafana:` keys in one file: the last wins and Grafana has no Ingress.
    let two = facts("kube-prometheus-stack-88.2.0", "rendered.yaml", "monitoring");
    let one = facts(
        "kube-prometheus-stack-88.2.0",
        "rendered-with-one-grafana-key.yaml",
        "monitoring",
    );
    assert!(!two.ingresses.iter().any(|i| i.name == "monitoring-grafana"));
    assert!(one.ingresses.iter().any(|i| i.name == "monitoring-grafana"));
    // Traefik: `service.type` does nothing (the Service stays LoadBalancer), and its workloads
    // carry `<release>-<namespace>`, which a wait on `instance=traefik` never finds.
    let t = facts("traefik-41.3.0", "rendered.yaml", "traefik");
    assert_eq!(t.services[0].type_, "LoadBalancer");
    assert_eq!(t.workloads[0].instance, "traefik-traefik");
    // Without `image.tag` the charts run their appVersion, not versions.yaml's pin.
    let pg = facts("postgres-1.6.7", "rendered.yaml", "devenv-data");
    assert_eq!(full(&pg.workloads[0].images[1]), "docker.io/library/postgres:18.4");
    let redis = facts("redis-2.4.4", "rendered.yaml", "devenv-data");
    assert_eq!(full(&redis.workloads[0].images[1]), "docker.io/library/redis:8.8.0");
}

#[test]
fn metrics_server_gets_the_kubelet_flag_after_its_own_args() {
    let Some(samples) = crate::common::render::samples() else {
        return;
    };
    let text = std::fs::read_to_string(samples.join("metrics-server-3.13.0/rendered.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args.last(), Some(&"--kubelet-insecure-tls"), "{args:?}");
    // And devenv sets exactly that on kind.
    let d = desired("");
    let ms = d.components.iter().find(|c| c.name == "metrics-server").unwrap();
    assert_eq!(ms.generated["args"], json!(["--kubelet-insecure-tls"]));
}

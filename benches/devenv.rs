//! `cargo bench --bench devenv`: devenv against the Makefile way and against the critical path, on
//! the SIMULATED world (no cluster can run where this was written). Latencies are the published
//! figures of ../shared/PAINPOINTS.md and FACTS.md, divided by a common factor (SCALE) so a run
//! takes about a minute; the ratios do not depend on the factor. Prints a table; BENCHMARKS.md
//! records the figures.

use devenv::exec::Cancel;
use devenv::sim::SimWorld;
use devenv::world::{ClusterProvider, ClusterSpec, Helm, InstallSpec, Kube, KubeTarget, Prober};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Real-world seconds are divided by this.
const SCALE: f64 = 20.0;
const RUNS: usize = 5;

/// Per-operation latency in real-world milliseconds (before scaling), from the published figures:
/// kind create ~33 s to a working API; ingress ready adds 20-30 s; a cold Postgres about a minute.
/// `kube.*` calls are in-process API requests (kube-rs) to the local API server: assumed 30 ms
/// each with a fresh TLS connection. The smoke pods (echo backend, DNS Job) start from images
/// already in the nodes: assumed 5 s each.
const LATENCY_MS: &[(&str, u64)] = &[
    ("cluster.create", 33_000),
    ("kube.wait_nodes", 4_000),
    ("cluster.kubeconfig", 300),
    // The node containers by label through the engine's API (one request on its socket; assumed
    // 30 ms like a Kubernetes API request; `docker ps`, which devenv falls back to, is 120 ms).
    ("cluster.observe", 30),
    ("engine.containers", 30),
    ("helm.list", 400),
    ("kube.helm_releases", 30),
    ("kube.get_applied", 30),
    ("kube.set_applied", 30),
    ("kube.server_version", 30),
    ("kube.ensure_volume", 90),
    ("kube.list_namespaces", 30),
    ("kube.create_namespace", 30),
    ("kube.smoke_echo", 90),
    ("kube.wait_echo", 5_000),
    ("kube.smoke_job", 30),
    ("kube.wait_job", 5_000),
    ("kube.delete_namespace", 30),
    ("probe", 1_500),
];

/// helm upgrade --install and the release's readiness, per release.
const INSTALL_MS: &[(&str, u64)] = &[("ingress-nginx", 25_000), ("postgresql", 60_000), ("redis", 15_000)];

fn scaled(ms: u64) -> u64 {
    (ms as f64 / SCALE).round() as u64
}

struct Bench {
    dir: PathBuf,
    project: PathBuf,
    world_file: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let dir = std::env::temp_dir().join(format!("devenv-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let project = dir.join("project");
        std::fs::create_dir_all(&project).unwrap();
        Bench {
            world_file: dir.join("world.json"),
            project,
            dir,
        }
    }

    /// A fresh simulated world with the scaled latencies.
    fn world(&self) -> SimWorld {
        let _ = std::fs::remove_file(&self.world_file);
        let _ = std::fs::remove_dir_all(self.dir.join("state"));
        let w = SimWorld::open(&self.world_file).unwrap();
        for (op, ms) in LATENCY_MS {
            w.set_latency(op, scaled(*ms));
        }
        w.set_latency("helm.upgrade_install", 0);
        w.with(|s| {
            for (rel, ms) in INSTALL_MS {
                s.latency_ms.insert(format!("helm.upgrade_install:{rel}"), scaled(*ms));
            }
        })
        .unwrap();
        w
    }

    /// Runs devenv; returns wall time, exit code and the process's own peak RSS in KiB.
    // The child is reaped by wait4 (which also gives its rusage), not by Child::wait.
    #[allow(clippy::zombie_processes)]
    fn devenv(&self, args: &[&str]) -> (Duration, i32, i64) {
        let t = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_devenv"))
            .args(args)
            .current_dir(&self.project)
            .env("DEVENV_SIMULATE", &self.world_file)
            .env("DEVENV_STATE_DIR", self.dir.join("state"))
            .env("CI", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child, writing into locals we own.
        unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        (t.elapsed(), libc::WEXITSTATUS(status), usage.ru_maxrss)
    }
}

/// The Makefile way: the same steps, one after another, each waiting for the previous, with the
/// files devenv's own cold `up` wrote (its kind config and values files, kept in `files`).
fn makefile_way(w: &SimWorld, state: &Path, files: &Path) -> Duration {
    let c = Cancel::new();
    let t = Instant::now();
    let spec = ClusterSpec {
        name: "devenv".into(),
        node_image: "kindest/node:v1.36.4".into(),
        config_path: files.join("kind-config.yaml"),
        kubernetes_version: String::new(),
        wait: Duration::from_secs(300),
    };
    w.create(&spec, &c).unwrap();
    let target = KubeTarget {
        kubeconfig: state.join("kubeconfig"),
        context: "kind-devenv".into(),
    };
    w.wait_nodes_ready(&target, Duration::from_secs(300), &c).unwrap();
    w.kubeconfig("devenv", &c).unwrap();
    for (rel, _) in INSTALL_MS {
        let (chart, namespace) = match *rel {
            "ingress-nginx" => ("ingress-nginx", "ingress-nginx"),
            "postgresql" => ("postgres", "devenv-data"),
            _ => ("redis", "devenv-data"),
        };
        let spec = InstallSpec {
            release: rel.to_string(),
            namespace: namespace.into(),
            chart: chart.into(),
            repository: None,
            version: Some("1.0.0".into()),
            values_files: vec![
                files.join(format!("values/{rel}.yaml")),
                files.join(format!("values/{rel}.devenv.yaml")),
            ],
            timeout: Duration::from_secs(300),
        };
        w.upgrade_install(&target, &spec, &c).unwrap();
    }
    // `kubectl apply` of the echo backend and its Ingress, `kubectl wait`, a DNS Job, the probes.
    let smoke = devenv::world::SmokeSpec {
        env: "devenv".into(),
        namespace: "devenv-smoke-0".into(),
        token: "0".into(),
        host: "0.devenv-smoke.localhost".into(),
        echo_image: String::new(),
        probe_image: String::new(),
        ingress_class: Some("nginx".into()),
        owner: String::new(),
        created: 0,
    };
    w.create_smoke_namespace(&target, &smoke, &c).unwrap();
    w.smoke_echo(&target, &smoke, Duration::from_secs(60), &c).unwrap();
    let dns = [("postgresql.devenv-data.svc.cluster.local".to_string(), 5432)];
    w.smoke_job(&target, &smoke, &dns, Duration::from_secs(60), &c).unwrap();
    let checks = [
        (
            "http",
            80,
            devenv::world::Check::Http {
                host_header: "0.devenv-smoke.localhost".into(),
            },
        ),
        (
            "postgresql",
            15432,
            devenv::world::Check::Postgres {
                user: "postgres".into(),
                database: "postgres".into(),
            },
        ),
        ("redis", 16379, devenv::world::Check::Redis),
    ];
    for (probe, port, check) in checks {
        let p = devenv::world::Probe {
            name: probe.into(),
            host: "127.0.0.1".into(),
            port,
            check,
        };
        w.probe(&p, None, "0", Duration::from_secs(60), &c).unwrap();
    }
    w.delete_namespace(&target, "devenv-smoke-0", &c).unwrap();
    t.elapsed()
}

/// The longest chain of dependent steps: observe, create, wait, kubeconfig, the record, the
/// slowest install (its volume, its readiness, its record), then the smoke run: the leftover sweep,
/// the namespace, the slowest of its concurrent checks (echo backend then the HTTP probe; the DNS
/// Job; the probes from the host), the record, and the namespace's removal.
fn critical_path() -> Duration {
    let get = |op: &str| scaled(LATENCY_MS.iter().find(|(o, _)| *o == op).unwrap().1);
    let slowest = INSTALL_MS.iter().map(|(_, ms)| scaled(*ms)).max().unwrap();
    let checks = (get("kube.smoke_echo") + get("kube.wait_echo") + get("probe"))
        .max(get("kube.smoke_job") + get("kube.wait_job"))
        .max(get("probe"));
    Duration::from_millis(
        get("engine.containers")
            + get("cluster.create")
            + get("kube.wait_nodes")
            + get("cluster.kubeconfig")
            + 2 * get("kube.set_applied")
            + get("kube.ensure_volume")
            + slowest
            + get("kube.set_applied")
            + get("kube.list_namespaces")
            + get("kube.create_namespace")
            + checks
            + get("kube.set_applied")
            + get("kube.delete_namespace"),
    )
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let b = Bench::new();
    println!(
        "devenv benchmarks: simulated world, published latencies / {SCALE}, {RUNS} runs each, median [min..max]\n"
    );

    // Cold up vs the Makefile way vs the critical path.
    let (mut cold, mut serial, mut rss) = (vec![], vec![], vec![]);
    for _ in 0..RUNS {
        b.world();
        let (d, code, kib) = b.devenv(&["up"]);
        assert_eq!(code, 0, "cold up failed");
        cold.push(ms(d));
        rss.push(kib as f64);
        // What a Makefile would carry: the kind config and the values files devenv wrote.
        let files = b.dir.join("makefile");
        let _ = std::fs::remove_dir_all(&files);
        std::fs::create_dir_all(files.join("values")).unwrap();
        let written = b.dir.join("state/devenv");
        std::fs::copy(written.join("kind-config.yaml"), files.join("kind-config.yaml")).unwrap();
        for e in std::fs::read_dir(written.join("values")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), files.join("values").join(e.file_name())).unwrap();
        }
        let w = b.world();
        std::fs::create_dir_all(b.dir.join("state")).unwrap();
        serial.push(ms(makefile_way(&w, &b.dir.join("state"), &files)));
    }
    let cp = ms(critical_path());
    let (cold_m, cold_lo, cold_hi) = median(cold);
    let (ser_m, ser_lo, ser_hi) = median(serial);
    println!("cold up                {cold_m:8.0} ms [{cold_lo:.0}..{cold_hi:.0}]");
    println!("Makefile way (serial)  {ser_m:8.0} ms [{ser_lo:.0}..{ser_hi:.0}]");
    println!("critical path          {cp:8.0} ms (computed)");
    println!("  cold up / critical path   {:.3}x   (target <= 1.15x)", cold_m / cp);
    println!("  serial / cold up          {:.2}x   (target >= 1.6x)", ser_m / cold_m);

    // No-op up, status and plan on the converged environment: with the simulated latencies, with
    // none (devenv's own cost), and the estimate at real latencies.
    let w = b.world();
    assert_eq!(b.devenv(&["up"]).1, 0);
    let measure = |args: &[&str]| -> (f64, f64, f64, usize, usize) {
        let mut v = vec![];
        let (mut reads, mut writes) = (0, 0);
        for _ in 0..RUNS {
            let before = w.calls().len();
            let (d, code, _) = b.devenv(args);
            assert_eq!(code, 0, "{args:?}");
            v.push(ms(d));
            let new: Vec<_> = w.calls()[before..].to_vec();
            reads = new.iter().filter(|c| !c.mutating).count();
            writes = new.iter().filter(|c| c.mutating).count();
        }
        let (m, lo, hi) = median(v);
        (m, lo, hi, reads, writes)
    };
    let commands: [(&str, &[&str], &str); 4] = [
        ("no-op up", &["up"], "< 300 ms"),
        ("status", &["status"], "< 200 ms"),
        ("plan", &["plan"], ""),
        ("--version", &["--version"], ""),
    ];
    let with_latency: Vec<_> = commands.iter().map(|(_, a, _)| measure(a)).collect();
    for (op, _) in LATENCY_MS {
        w.set_latency(op, 0);
    }
    let without: Vec<_> = commands.iter().map(|(_, a, _)| measure(a)).collect();
    println!(
        "
{:<12} {:>22} {:>20} {:>14} {:>7}  target",
        "", "simulated latency", "zero latency", "real (est.)", "calls"
    );
    for (i, (label, _, target)) in commands.iter().enumerate() {
        let (m, lo, hi, reads, writes) = with_latency[i];
        let (z, zlo, zhi, _, _) = without[i];
        let real = z + (m - z) * SCALE;
        println!(
            "{label:<12} {m:8.1} ms [{lo:.1}..{hi:.1}] {z:7.1} ms [{zlo:.1}..{zhi:.1}] {real:11.0} ms {reads:>3}r/{writes}w  {target}"
        );
    }
    println!(
        "  (r/w: read-only and mutating calls to the simulated world; each is one kind/docker/kubectl/helm call for the real adapters)"
    );
    let (r_m, _, r_hi) = median(rss);
    println!(
        "\npeak RSS of cold up    {:8.1} MiB (max {:.1})   (target < 60 MB)",
        r_m / 1024.0,
        r_hi / 1024.0
    );

    // Image loading: N images into M nodes, first run and second run. Transfer at 100 MB/s into
    // each node (docker save | ctr import on a laptop), all nodes at once; scaled like the rest.
    const N: usize = 5;
    const M: usize = 3;
    const SIZE: u64 = 150 << 20;
    let w = b.world();
    w.with(|s| {
        s.bytes_per_ms = Some(100_000 * SCALE as u64);
        let nodes = (0..M)
            .map(|i| devenv::world::NodeState {
                name: format!("devenv-node{i}"),
                role: if i == 0 {
                    "control-plane".into()
                } else {
                    "worker".into()
                },
                running: true,
            })
            .collect();
        s.clusters.insert(
            "devenv".into(),
            devenv::sim::SimCluster {
                nodes,
                ..Default::default()
            },
        );
    })
    .unwrap();
    let names: Vec<String> = (0..N).map(|i| format!("app{i}:dev")).collect();
    for n in &names {
        w.add_host_image(n, SIZE);
    }
    let mut args = vec!["load"];
    args.extend(names.iter().map(String::as_str));
    println!(
        "\nimage loading: {N} images of {} MiB into {M} simulated nodes",
        SIZE >> 20
    );
    for run in ["first run", "second run"] {
        let before = w.calls().len();
        let (d, code, _) = b.devenv(&args);
        assert_eq!(code, 0, "load failed");
        let moved: u64 = w.calls()[before..]
            .iter()
            .filter(|c| c.op == "images.import")
            .map(|c| c.bytes)
            .sum();
        let real = (moved / M as u64) as f64 / (100 << 20) as f64;
        println!(
            "  {run:<11} {:8.0} ms   {:6} MiB moved   (real transfer at 100 MB/s per node, nodes at once: {real:.1} s)",
            ms(d),
            moved >> 20
        );
    }

    image_cache(&b);
    real_engine_node_lookup();
    let _ = std::fs::remove_dir_all(&b.dir);
}

/// Compressed size in MB of each pinned image and the download rate of a laptop: ASSUMED
/// figures (Docker Hub's and registry.k8s.io's listings are of this order; 50 Mbit/s is a
/// common home link), not measured here. The cold installs of LATENCY_MS/INSTALL_MS include the
/// nodes pulling these images; with the cache the nodes get them from this machine instead.
const IMAGE_MB: &[(&str, &str, u64)] = &[
    (
        "ingress-nginx",
        "registry.k8s.io/ingress-nginx/controller:v1.15.1@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
        110,
    ),
    (
        "ingress-nginx",
        "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.6.9@sha256:01038e7de14b78d702d2849c3aad72fd25903c4765af63cf16aa3398f5d5f2dd",
        25,
    ),
    ("postgresql", "docker.io/library/postgres:18.6", 150),
    ("redis", "docker.io/library/redis:8.10.1", 50),
    ("smoke", "docker.io/hashicorp/http-echo:1.0.0", 3),
    ("smoke", "docker.io/library/busybox:1.37.0", 2),
];
const DOWNLOAD_MB_PER_S: f64 = 6.25;

/// A cold `up` after `down` on the same machine, without the image cache (the nodes pull every
/// image again) and with it (the images come from this machine's engine at 100 MB/s per node).
fn image_cache(b: &Bench) {
    let pull_ms = |what: &str| -> u64 {
        IMAGE_MB
            .iter()
            .filter(|(c, _, _)| *c == what)
            .map(|(_, _, mb)| (*mb as f64 / DOWNLOAD_MB_PER_S * 1000.0) as u64)
            .sum()
    };
    let mut results = vec![];
    for cache in [false, true] {
        let mut v = vec![];
        for _ in 0..RUNS {
            let w = b.world();
            std::fs::write(b.project.join("devenv.yaml"), format!("imageCache: {cache}\n")).unwrap();
            assert_eq!(b.devenv(&["up"]).1, 0, "first up (cache {cache})");
            assert_eq!(b.devenv(&["down"]).1, 0);
            w.with(|s| {
                s.bytes_per_ms = Some(100_000 * SCALE as u64);
                for (rel, ms) in INSTALL_MS {
                    // The nodes pull without the cache; with it, the images are in them already.
                    let ms = if cache { ms.saturating_sub(pull_ms(rel)) } else { *ms };
                    s.latency_ms.insert(format!("helm.upgrade_install:{rel}"), scaled(ms));
                }
                let smoke_pull = if cache { 0 } else { pull_ms("smoke") };
                for op in ["kube.wait_echo", "kube.wait_job"] {
                    let base = LATENCY_MS.iter().find(|(o, _)| *o == op).unwrap().1;
                    s.latency_ms.insert(op.into(), scaled(base + smoke_pull));
                }
                for (_, image, mb) in IMAGE_MB {
                    if let Some(i) = s.host_images.get_mut(*image) {
                        i.size = mb << 20;
                    }
                }
            })
            .unwrap();
            let before = w.calls().len();
            let (d, code, _) = b.devenv(&["up"]);
            assert_eq!(code, 0, "cold up after down (cache {cache})");
            let pulls = w.calls()[before..].iter().filter(|c| c.op == "images.pull").count();
            assert_eq!(pulls, 0, "the second cold up pulled");
            v.push(ms(d));
        }
        results.push(median(v));
    }
    let _ = std::fs::remove_file(b.project.join("devenv.yaml"));
    let (off, on) = (results[0], results[1]);
    let total_mb: u64 = IMAGE_MB.iter().map(|(_, _, mb)| mb).sum();
    println!(
        "\nimage cache: cold up after down, {} pinned images ({total_mb} MB, assumed), download {DOWNLOAD_MB_PER_S} MB/s (assumed)",
        IMAGE_MB.len()
    );
    println!(
        "  without the cache      {:8.0} ms [{:.0}..{:.0}]   (real est. {:.0} s)",
        off.0,
        off.1,
        off.2,
        off.0 * SCALE / 1000.0
    );
    println!(
        "  with the cache         {:8.0} ms [{:.0}..{:.0}]   (real est. {:.0} s)",
        on.0,
        on.1,
        on.2,
        on.0 * SCALE / 1000.0
    );
    println!(
        "  the cache removes      {:8.0} %  of that cold up",
        (1.0 - on.0 / off.0) * 100.0
    );
}

/// The one read of a no-op `up` that is not an API request to the cluster: the node containers
/// by kind's label, on this machine's REAL Docker engine (when one answers), `docker ps` against
/// the engine's API. The simulated latency of `cluster.observe` above is the `docker ps` figure.
fn real_engine_node_lookup() {
    use devenv::world::ContainerEngine;
    let runner: std::sync::Arc<dyn devenv::process::Runner> = std::sync::Arc::new(devenv::process::SystemRunner);
    let engine = |api| devenv::adapters::docker::DockerCli {
        runner: runner.clone(),
        program: "docker".into(),
        api,
    };
    let cancel = Cancel::new();
    if engine(false)
        .containers_labelled("io.x-k8s.kind.cluster", "devenv-bench", &cancel)
        .is_err()
    {
        println!(
            "
node lookup on the real engine: NOT RUN (no Docker engine answers here)"
        );
        return;
    }
    println!(
        "
node lookup on the real Docker engine (kind's label, {RUNS} x 5 runs, median [min..max]):"
    );
    for (label, api) in [("docker ps", false), ("engine API", true)] {
        let e = engine(api);
        let mut v = vec![];
        for _ in 0..RUNS * 5 {
            let t = Instant::now();
            e.containers_labelled("io.x-k8s.kind.cluster", "devenv-bench", &cancel)
                .unwrap();
            v.push(ms(t.elapsed()));
        }
        let (m, lo, hi) = median(v);
        println!("  {label:<11} {m:7.1} ms [{lo:.1}..{hi:.1}]");
    }
}

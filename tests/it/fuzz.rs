//! Property tests (proptest; cargo-fuzz needs a nightly toolchain this project does not assume):
//! the configuration loaders on mutated real files, and every parser of tool output on arbitrary
//! and truncated text. None may panic; a config error must name its file. Run lengths and results
//! are in RELIABILITY.md.

use devenv::adapters::{docker, existing, helm, kind, minikube};
use devenv::config::{self, Overrides};
use devenv::tools::version;
use proptest::prelude::*;
use std::path::Path;

const FILES: &[&str] = &[
    "versions.yaml",
    "kind-config.yaml",
    "devenv.yaml",
    "helm-values/postgresql.yaml",
];

fn original(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// One edit to a file: delete, insert or replace a span at a position, with YAML-ish text.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, usize, String),
}

fn yamlish() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(":".to_string()),
        Just("- ".to_string()),
        Just("\n  ".to_string()),
        Just("\t".to_string()),
        Just("[".to_string()),
        Just("{".to_string()),
        Just("\"".to_string()),
        Just("&a *a".to_string()),
        Just("!!binary".to_string()),
        Just("99999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("~".to_string()),
        Just("<<: *x".to_string()),
        "[a-zA-Z0-9_.:/@ -]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0usize..4000, 1usize..40).prop_map(|(p, n)| Edit::Delete(p, n)),
        (0usize..4000, yamlish()).prop_map(|(p, t)| Edit::Insert(p, t)),
        (0usize..4000, 1usize..20, yamlish()).prop_map(|(p, n, t)| Edit::Replace(p, n, t)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len().max(1);
        match e {
            Edit::Delete(p, n) => {
                let p = p % len;
                let end = (p + n).min(chars.len());
                chars.drain(p.min(chars.len())..end);
            }
            Edit::Insert(p, t) => {
                let p = p % (chars.len() + 1);
                chars.splice(p..p, t.chars());
            }
            Edit::Replace(p, n, t) => {
                let p = p % len;
                let end = (p + n).min(chars.len());
                chars.splice(p.min(chars.len())..end, t.chars());
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    // 400 cases per property in the test suite; DEVENV_FUZZ_CASES=N for a long run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("DEVENV_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_config_files_load_or_fail_naming_the_file(which in 0usize..4, edits in prop::collection::vec(edit(), 1..4)) {
        let name = FILES[which];
        let dir = crate::common::TempDir::new("fuzz-config");
        dir.write(name, &apply(&original(name), &edits));
        match config::load(dir.path(), Path::new("."), &Overrides::default()) {
            Ok(_) => {}
            Err(devenv::error::Error::Config { location, help, .. }) => {
                prop_assert!(location.file.starts_with(name), "error names {} for a broken {name}", location.file);
                prop_assert!(!help.is_empty());
            }
            Err(e) => prop_assert!(false, "not a config error: {e}"),
        }
    }

    #[test]
    fn tool_output_parsers_never_panic(text in any::<String>()) {
        let _ = helm::parse_list(&text);
        let _ = helm::parse_major(&text);
        let _ = minikube::parse_profiles(&text);
        let _ = existing::parse_nodes(&text);
        let _ = docker::parse_nodes(&text);
        let _ = docker::engine_unreachable(&text);
        let _ = kind::parse_clusters(&text);
        let _ = version::find(&text);
        let _ = minikube::advice(&text);
    }

    /// A Secret labelled `owner=helm` whose `release` is anything at all: skipped, never a panic.
    #[test]
    fn any_helm_release_secret_body_is_read_or_skipped(body in proptest::collection::vec(any::<u8>(), 0..300), gz in any::<bool>()) {
        use std::io::Write;
        let bytes = if gz {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        } else {
            body
        };
        let inner = devenv::probe::scram::b64encode(&bytes);
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
            "type": "helm.sh/release.v1",
            "metadata": {"name": "sh.helm.release.v1.x.v1", "namespace": "n", "labels": {"owner": "helm", "name": "x", "status": "deployed", "version": "1"}},
            "data": {"release": devenv::probe::scram::b64encode(inner.as_bytes())},
        })).unwrap();
        let _ = devenv::adapters::kube::releases_from_secrets(&[secret]);
    }

    #[test]
    fn truncated_real_output_is_an_error_or_a_shorter_answer_never_a_panic(cut in 0usize..2000) {
        for (file, parse) in [
            ("golden-helm4-list-json.txt", 0),
            ("list-all-namespaces-json-v3-mixed-tz.txt", 0),
            ("profile-list-json-v1.17dev.partial.txt", 2),
        ] {
            let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples").join(file)).unwrap();
            let t: String = text.chars().take(cut).collect();
            match parse {
                0 => { let _ = helm::parse_list(&t); }
                _ => { let _ = minikube::parse_profiles(&t); }
            }
        }
    }
}

#[test]
fn garbage_from_each_tool_is_a_clear_error_naming_the_tool() {
    let garbage = "\u{1b}[31mpanic: runtime error: invalid memory address\ngoroutine 1 [running]:";
    let cases: Vec<(&str, Result<(), devenv::error::Error>)> = vec![
        ("helm list", helm::parse_list(garbage).map(|_| ())),
        ("minikube profile list", minikube::parse_profiles(garbage).map(|_| ())),
        ("kubectl get nodes", existing::parse_nodes(garbage).map(|_| ())),
    ];
    for (tool, r) in cases {
        let e = r.expect_err(tool);
        assert!(e.to_string().contains(tool), "{tool}: {e}");
        assert_eq!(e.exit_code(), 1, "{tool}");
    }
}

//! The malformed-configuration corpus: every directory under tests/config/ holds one broken file
//! (or a broken combination of files) and an `expect` file: the `file:line:column` devenv must name,
//! then a part of the message. Each must exit 2 with `error:` and a `help:` line, and never panic.

use crate::common::run_in;
use std::path::Path;

#[test]
fn every_malformed_config_is_reported_with_its_place_and_a_fix() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config");
    let state = crate::common::TempDir::new("corpus-state");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 25, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expect = std::fs::read_to_string(case.join("expect")).unwrap();
        let mut lines = expect.lines();
        let (loc, msg) = (lines.next().unwrap(), lines.next().unwrap());
        let world = devenv::sim::SimWorld::new();
        let dir = format!("tests/config/{name}");
        let out = run_in(
            Path::new(env!("CARGO_MANIFEST_DIR")),
            state.path(),
            Some(world.clone()),
            &["plan", "-C", &dir],
            Default::default(),
        );
        let first = out.stderr.lines().next().unwrap_or("").to_string();
        let ok = out.code == 2
            && first.starts_with(&format!("error: {dir}/{loc}"))
            && first.contains(msg)
            && out.stderr.lines().any(|l| l.starts_with("help: ") && l.len() > 8)
            && world.calls().is_empty();
        if !ok {
            failures.push(format!("{name}: expected `{loc}` and `{msg}`, got {out:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn an_empty_directory_uses_the_built_in_defaults() {
    let empty = crate::common::TempDir::new("defaults");
    let state = crate::common::TempDir::new("defaults-state");
    let out = run_in(
        empty.path(),
        state.path(),
        Some(devenv::sim::SimWorld::new()),
        &["plan"],
        Default::default(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("ingress-nginx 4.15.1") && out.stdout.contains("postgresql 1.6.7"),
        "{out:?}"
    );
}

#[test]
fn a_bad_name_flag_is_a_usage_error() {
    let empty = crate::common::TempDir::new("badname");
    let out = run_in(
        empty.path(),
        empty.path(),
        Some(devenv::sim::SimWorld::new()),
        &["plan", "-n", "Prod_DB"],
        Default::default(),
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--name `Prod_DB`") && out.stderr.contains("help:"),
        "{out:?}"
    );
}

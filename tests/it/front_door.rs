//! The front door (issue 19): the set-up line, and the CLI conventions of kind, kubectl and
//! cargo. Through the real binary, on the SIMULATED world where a command needs one.

use crate::common::TempDir;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn every_cargo_install_in_the_readme_builds_what_cargo_lock_pins() {
    let text = readme();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("cargo install")).collect();
    assert!(!lines.is_empty());
    for l in lines {
        assert!(l.contains("cargo install --locked"), "without --locked: {l}");
    }
    assert!(text.contains("cargo install --locked --path . && devenv up"));
    // The CI example's commands are commands this devenv has.
    for cmd in [
        "devenv tools install",
        "devenv doctor",
        "devenv -o json run --ephemeral -- cargo test",
    ] {
        assert!(text.contains(&format!("- run: {cmd}")), "{cmd}");
    }
}

struct Sim {
    project: TempDir,
    state: TempDir,
    world: std::path::PathBuf,
}

impl Sim {
    fn new(tag: &str) -> Sim {
        let project = TempDir::new(&format!("{tag}-proj"));
        let state = TempDir::new(&format!("{tag}-state"));
        let world = state.path().join("world.json");
        devenv::sim::SimWorld::open(&world).unwrap();
        Sim { project, state, world }
    }
    fn cmd(&self, args: &[&str]) -> crate::common::Spawn {
        crate::common::devenv(self.project.path(), self.state.path())
            .simulate(&self.world)
            .args(args)
    }
}

#[test]
fn version_reports_devenv_and_its_tools_and_is_one_json_document() {
    let s = Sim::new("version");
    devenv::sim::SimWorld::open(&s.world)
        .unwrap()
        .with(|w| {
            for (t, v) in [
                ("kind", "0.33.0"),
                ("helm", "4.3.0"),
                ("kubectl", "1.36.4"),
                ("docker", "29.6.1"),
            ] {
                w.host.tool_versions.insert(t.into(), v.into());
            }
        })
        .unwrap();
    let out = s.cmd(&["version"]).output();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with(&format!("devenv {}\n", env!("CARGO_PKG_VERSION"))),
        "{out:?}"
    );
    let out = s.cmd(&["version", "-o", "json"]).output();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["devenv"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (doc["tools"]["kind"].as_str(), doc["tools"]["helm"].as_str()),
        (Some("0.33.0"), Some("4.3.0")),
        "{doc}"
    );
}

#[test]
fn verbose_counts_and_vv_shows_each_tool_command_with_its_time() {
    let s = Sim::new("vv");
    // -vv parses (it was an error), and -v three times too.
    assert_eq!(s.cmd(&["-vv", "plan"]).output().code, 0);
    assert_eq!(s.cmd(&["-vvv", "plan"]).output().code, 0);
    // The real runner traced: `doctor` with stand-in tools on PATH (no simulation).
    let bin = TempDir::new("vv-bin");
    for tool in ["kind", "helm", "kubectl", "docker"] {
        bin.write(tool, "#!/bin/sh\necho v1.36.4\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.path().join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let traced = crate::common::devenv(s.project.path(), s.state.path())
        .clean_env(s.state.path())
        .env("PATH", bin.path())
        .env("HOME", s.state.path())
        .args(["-vv", "tools", "list"])
        .output();
    assert!(
        traced
            .stderr
            .lines()
            .any(|l| l.contains("$ ") && l.contains(" ms, exit 0)")),
        "{traced:?}"
    );
    let quiet = crate::common::devenv(s.project.path(), s.state.path())
        .clean_env(s.state.path())
        .env("PATH", bin.path())
        .env("HOME", s.state.path())
        .args(["tools", "list"])
        .output();
    assert!(!quiet.stderr.contains(" ms, exit "), "{quiet:?}");
}

#[test]
fn global_flags_come_from_devenv_variables_too() {
    let s = Sim::new("envflags");
    let out = s
        .cmd(&["plan"])
        .env("DEVENV_NAME", "from-env")
        .env("DEVENV_OUTPUT", "json")
        .output();
    assert_eq!(out.code, 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["environment"], "from-env", "{doc}");
    // The flag wins over the variable.
    let out = s
        .cmd(&["-n", "flag", "plan", "-o", "json"])
        .env("DEVENV_NAME", "from-env")
        .output();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["environment"], "flag");
}

#[test]
fn the_lock_flag_says_what_it_is_about_and_no_wait_still_works() {
    let s = Sim::new("lockflag");
    let help = s.cmd(&["up", "--help"]).output();
    assert!(help.stdout.contains("--fail-if-locked"), "{help:?}");
    for flag in ["--fail-if-locked", "--no-wait"] {
        let out = s.cmd(&["up", "--no-test", flag]).output();
        assert_eq!(out.code, 0, "{flag}: {out:?}");
    }
}

#[test]
fn colour_can_be_forced_for_ci_logs_and_switched_off() {
    let s = Sim::new("color");
    assert_eq!(s.cmd(&["up", "--no-test"]).output().code, 0);
    let forced = s
        .cmd(&["up", "--no-test", "--recreate", "--yes", "--color", "always"])
        .output();
    assert!(forced.stderr.contains("\x1b[32m✓"), "{forced:?}");
    let env_forced = s
        .cmd(&["up", "--no-test", "--recreate", "--yes"])
        .env("CLICOLOR_FORCE", "1")
        .output();
    assert!(env_forced.stderr.contains("\x1b[32m✓"), "{env_forced:?}");
    let never = s
        .cmd(&["up", "--no-test", "--recreate", "--yes", "--color", "never"])
        .env("CLICOLOR_FORCE", "1")
        .output();
    assert!(!never.stderr.contains('\x1b'), "{never:?}");
}

//! A small builder for running devenv in-process, as a user would from a shell.
#![allow(dead_code)]

pub mod render;

use devenv::exec::Cancel;
use devenv::sim::SimWorld;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

pub struct Out {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A throwaway directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("devenv-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One project directory, one state directory and one simulated world (a user's laptop, simulated).
pub struct Lab {
    pub project: TempDir,
    pub state: TempDir,
    pub world: SimWorld,
}

impl Lab {
    pub fn new(tag: &str) -> Self {
        Lab {
            project: TempDir::new(&format!("{tag}-proj")),
            state: TempDir::new(&format!("{tag}-state")),
            world: SimWorld::new(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, Cancel::new())
    }

    pub fn run_with(&self, args: &[&str], cancel: Cancel) -> Out {
        run_in(
            self.project.path(),
            self.state.path(),
            Some(self.world.clone()),
            args,
            cancel,
        )
    }

    /// Mutating calls the world has seen.
    pub fn mutations(&self) -> Vec<String> {
        self.world
            .calls()
            .into_iter()
            .filter(|c| c.mutating)
            .map(|c| format!("{} {}", c.op, c.target))
            .collect()
    }
}

pub fn run_in(cwd: &Path, state: &Path, world: Option<SimWorld>, args: &[&str], cancel: Cancel) -> Out {
    let (out, err) = (Buf::default(), Buf::default());
    let mut vars = BTreeMap::new();
    vars.insert("DEVENV_STATE_DIR".to_string(), state.display().to_string());
    vars.insert("HOME".to_string(), state.display().to_string());
    let env = devenv::Env {
        vars,
        cwd: cwd.to_path_buf(),
        stdout: Box::new(out.clone()),
        stderr: Box::new(err.clone()),
        stderr_is_terminal: false,
        world: world.map(|w| w.world()),
        handle_signals: false,
        cancel,
        stdin: Box::new(std::io::Cursor::new(Vec::new())),
        stdin_is_terminal: false,
    };
    let argv: Vec<&str> = std::iter::once("devenv").chain(args.iter().copied()).collect();
    let code = devenv::run(argv, env);
    Out {
        code,
        stdout: out.text(),
        stderr: err.text(),
    }
}

/// The real `devenv` binary (built with the simulator, for `DEVENV_SIMULATE`), run as a user
/// would from a shell: in `project`, with its state under `state`, `CI` set (plain output), and
/// whatever else a test adds. The one way the tests spawn devenv.
pub struct Spawn {
    cmd: std::process::Command,
}

pub fn devenv(project: &Path, state: &Path) -> Spawn {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_devenv"));
    cmd.current_dir(project)
        .env("DEVENV_STATE_DIR", state)
        .env("CI", "true")
        .stdin(std::process::Stdio::null());
    Spawn { cmd }
}

impl Spawn {
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, a: I) -> Self {
        self.cmd.args(a);
        self
    }
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }
    pub fn env_remove(mut self, k: &str) -> Self {
        self.cmd.env_remove(k);
        self
    }
    /// Nothing of this test process's environment but what is set after this.
    pub fn clean_env(mut self, state: &Path) -> Self {
        self.cmd.env_clear().env("DEVENV_STATE_DIR", state).env("CI", "true");
        self
    }
    /// The simulated world kept in `file` (see `devenv::sim`).
    pub fn simulate(self, file: &Path) -> Self {
        self.env("DEVENV_SIMULATE", file)
    }
    /// The command itself, for what only a few tests need (another user, pipes).
    pub fn command(&mut self) -> &mut std::process::Command {
        &mut self.cmd
    }
    pub fn output(mut self) -> Out {
        let out = self.cmd.output().expect("devenv runs");
        Out {
            code: out.status.code().map(|c| c as u8).unwrap_or(255),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("devenv starts")
    }
}

/// The json-mode lines of a command's stdout, each one object.
pub fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}")))
        .collect()
}

/// The first json event of that name; for a report (one document), the document.
pub fn event(stdout: &str, name: &str) -> serde_json::Value {
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(stdout)
        && doc.get("event").is_none()
    {
        return doc;
    }
    events(stdout)
        .into_iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {stdout}"))
}

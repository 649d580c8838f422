//! `devenv run [--ephemeral] -- CMD…`: bring the environment up, run CMD with its variables,
//! forward SIGINT/SIGTERM to it, tear an ephemeral environment down on every exit path, and exit
//! with CMD's status.

use super::App;
use crate::error::{Error, Result, Signal};
use crate::exec::{Cancel, Reason};
use std::time::Duration;

pub fn run(app: &App, command: &[String], ephemeral: bool, select: &crate::cli::SelectArgs) -> Result<()> {
    let up = super::up::run(
        app,
        super::up::UpArgs {
            select,
            dry_run: false,
            timeout: None,
            no_wait: false,
            yes: false,
            start_only: false,
        },
    );
    let outcome = up.and_then(|()| run_command(app, command));
    if ephemeral {
        // A fresh token: the teardown must not be cancelled by the signal that ended the command.
        let teardown = super::down::run_with(app, true, false, &Cancel::new());
        if let Err(e) = teardown {
            app.reporter.error(&e);
        }
    }
    outcome
}

fn run_command(app: &App, command: &[String]) -> Result<()> {
    let vars = super::env::variables(app)?;
    let (program, args) = command.split_first().ok_or_else(|| {
        Error::usage(
            "no command to run",
            "write it after `--`, e.g. devenv run -- cargo test",
        )
    })?;
    app.reporter.info(&format!(
        "running {} with the environment's variables",
        crate::process::Cmd::new(program).args(args.iter().cloned()).display()
    ));
    let mut child = std::process::Command::new(program)
        .args(args)
        .envs(&vars)
        .current_dir(&app.cwd)
        .spawn()
        .map_err(|e| Error::usage(format!("cannot run `{program}`: {e}"), "check the command after `--`"))?;
    let mut forwarded = None;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| Error::failed(e.to_string(), ""))? {
            break s;
        }
        if let (None, Some(Reason::Signal(sig))) = (forwarded, app.cancel.reason()) {
            let n = if sig == Signal::Term {
                libc::SIGTERM
            } else {
                libc::SIGINT
            };
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, n) };
            forwarded = Some(sig);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(sig) = forwarded {
        return Err(Error::Interrupted(sig));
    }
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Error::Exited(code.clamp(1, 255) as u8)),
        None => Err(Error::Exited(1)),
    }
}

//! devenv: one command for a local Kubernetes development environment.
//!
//! `main.rs` only calls [`run`]; tests call it in-process with their own [`Env`].

pub mod adapters;
pub mod cli;
pub mod commands;
pub mod components;
pub mod config;
pub mod context;
pub mod doctor;
pub mod error;
pub mod exec;
pub mod files;
pub mod guard;
pub mod images;
pub mod output;
pub mod plan;
pub mod probe;
pub mod process;
pub mod readiness;
pub mod signals;
/// The simulated world: only with the `sim` feature (tests and benchmarks), never in a release.
#[cfg(feature = "sim")]
pub mod sim;
pub mod state;
pub mod steps;
pub mod tools;
pub mod world;

use clap::{CommandFactory, Parser};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Everything `run` takes from its surroundings.
pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub stdout: output::Sink,
    pub stderr: output::Sink,
    pub stderr_is_terminal: bool,
    /// Tests inject a simulated world; None chooses by driver (or DEVENV_SIMULATE).
    pub world: Option<world::World>,
    /// Install SIGINT/SIGTERM handlers (the real process only).
    pub handle_signals: bool,
    /// Tests pass a token they can trip to simulate a signal.
    pub cancel: exec::Cancel,
    /// Where confirmations are read from (only when it is a terminal).
    pub stdin: Box<dyn std::io::BufRead + Send>,
    pub stdin_is_terminal: bool,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars().collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            stderr_is_terminal: std::io::stderr().is_terminal(),
            world: None,
            handle_signals: true,
            cancel: exec::Cancel::new(),
            stdin: Box::new(std::io::BufReader::new(std::io::stdin())),
            stdin_is_terminal: std::io::stdin().is_terminal(),
        }
    }
}

/// Runs devenv with `args` (including the program name) and returns the exit code.
pub fn run<I, T>(args: I, mut env: Env) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // One TLS crypto provider for the whole binary (ring); a second one compiled in would make
    // rustls panic at the first connection. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::*;
            let text = e.render().to_string();
            return match e.kind() {
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand if e.exit_code() == 0 => {
                    let _ = env.stdout.write_all(text.as_bytes());
                    error::exit::OK
                }
                _ => {
                    let _ = env.stderr.write_all(text.as_bytes());
                    error::exit::USAGE
                }
            };
        }
    };
    let ci = env
        .vars
        .get("CI")
        .is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    let mode = if cli.global.output != cli::Output::Text {
        output::Mode::Json
    } else if env.stderr_is_terminal && !ci {
        output::Mode::Terminal
    } else {
        output::Mode::Plain
    };
    let set = |k: &str| env.vars.get(k).is_some_and(|v| !v.is_empty() && v != "0");
    let color = match (cli.global.no_color, cli.global.color) {
        (true, _) | (_, cli::ColorChoice::Never) => false,
        (_, cli::ColorChoice::Always) => mode != output::Mode::Json,
        _ if set("CLICOLOR_FORCE") => mode != output::Mode::Json,
        _ => mode == output::Mode::Terminal && !set("NO_COLOR"),
    };
    // Reports are one document (kubectl's convention); what acts streams its events.
    let document = matches!(
        cli.command,
        cli::Command::Status
            | cli::Command::Plan { .. }
            | cli::Command::Env { .. }
            | cli::Command::Doctor
            | cli::Command::Version
            | cli::Command::Tools {
                command: cli::ToolsCommand::List
            }
    );
    if cli.global.output == cli::Output::Yaml && !document {
        let _ = env.stderr.write_all(
            format!(
                "error: -o yaml is for the reports (status, plan, env, doctor, tools list, version); `{}` streams its events with -o json\n",
                cli.command.name()
            )
            .as_bytes(),
        );
        return error::exit::USAGE;
    }
    let mut reporter = output::Reporter::new(
        mode,
        cli.global.quiet,
        cli.global.verbose,
        color,
        env.stdout,
        env.stderr,
    );
    if document && mode == output::Mode::Json {
        reporter.as_document(if cli.global.output == cli::Output::Yaml {
            output::Shape::Yaml
        } else {
            output::Shape::Json
        });
    }
    let reporter = Arc::new(reporter);
    let ledger = Arc::new(exec::Ledger::new());
    if env.handle_signals {
        signals::install(env.cancel.clone(), ledger.clone(), reporter.clone());
    }
    let confirm = if env.stdin_is_terminal {
        Some(std::sync::Mutex::new(env.stdin))
    } else {
        None
    };
    let mut app = commands::App {
        global: cli.global,
        vars: env.vars,
        cwd: env.cwd,
        reporter,
        cancel: env.cancel,
        ledger,
        world: env.world.take(),
        confirm,
    };
    if let cli::Command::Run { ephemeral: true, .. } = &cli.command {
        // `<name>-<6 hex>`, the name being --name or devenv.yaml's (a config that does not load
        // fails the same way in `up` a moment later).
        let base = match &app.global.name {
            Some(n) => n.clone(),
            None => app.config().map(|c| c.project.name).unwrap_or_else(|_| "devenv".into()),
        };
        let suffix: String = probe::token().chars().take(6).collect();
        app.global.name = Some(format!("{}-{suffix}", base.chars().take(33).collect::<String>()));
    }
    let result = match &cli.command {
        cli::Command::Up {
            select,
            dry_run,
            timeout,
            no_wait,
            yes,
        } => commands::up::run(
            &app,
            commands::up::UpArgs {
                select,
                dry_run: *dry_run,
                timeout: timeout.as_deref(),
                no_wait: *no_wait,
                yes: *yes,
                start_only: false,
            },
        ),
        cli::Command::Start { no_wait } => commands::up::run(
            &app,
            commands::up::UpArgs {
                select: &cli::SelectArgs::default(),
                dry_run: false,
                timeout: None,
                no_wait: *no_wait,
                yes: false,
                start_only: true,
            },
        ),
        cli::Command::Stop { no_wait } => commands::stop::run(&app, *no_wait),
        cli::Command::Plan { select } => commands::plan::run(&app, select),
        cli::Command::Down { purge, no_wait } => commands::down::run(&app, *purge, *no_wait),
        cli::Command::Status => commands::status::run(&app),
        cli::Command::Test { junit } => commands::test::run(&app, junit.as_deref()),
        cli::Command::Doctor => commands::doctor::run(&app),
        cli::Command::Env { format } => commands::env::run(&app, *format),
        cli::Command::Run {
            select,
            ephemeral,
            command,
        } => commands::run_cmd::run(&app, command, *ephemeral, select),
        cli::Command::Load { images, no_wait } => commands::load::run(&app, images, *no_wait),
        cli::Command::Tools {
            command: cli::ToolsCommand::List,
        } => commands::tools::list(&app),
        cli::Command::Tools {
            command: cli::ToolsCommand::Install { tools },
        } => commands::tools::install_cmd(&app, tools),
        cli::Command::Init { force } => commands::init::run(&app, *force),
        cli::Command::Version => commands::version::run(&app),
        cli::Command::Completion { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cli::Cli::command(), "devenv", &mut buf);
            app.reporter.data(&String::from_utf8_lossy(&buf));
            Ok(())
        }
    };
    let code = match result {
        Ok(()) => error::exit::OK,
        Err(e) => {
            app.reporter.error(&e);
            e.exit_code()
        }
    };
    app.reporter.finish(cli.command.name(), code);
    code
}

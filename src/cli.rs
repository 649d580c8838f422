//! The command line (README.md, "Commands").

use crate::config::Driver;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXAMPLES: &str = "Examples:
  devenv up                              bring the environment up (again: changes nothing)
  devenv up --with monitoring            also Prometheus and Grafana, remembered
  eval \"$(devenv env)\"                  DATABASE_URL, REDIS_URL, KUBECONFIG, ... in this shell
  devenv -n review-42 up                 a second environment, on host ports of its own
  devenv run --ephemeral -- cargo test   CI: a fresh environment for one command, removed after
  devenv status -o json | jq .healthy    one JSON document
  devenv down --purge                    everything, PostgreSQL's data included

Every global flag can also be set by environment: DEVENV_DIR, DEVENV_NAME, DEVENV_DRIVER,
DEVENV_CONTEXT, DEVENV_OUTPUT, DEVENV_COLOR.";

#[derive(Parser, Debug)]
#[command(
    name = "devenv",
    version,
    about = "One command for a local Kubernetes development environment: cluster, ingress, PostgreSQL, Redis, your images, and smoke tests that really connect.",
    propagate_version = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Directory holding the config files (versions.yaml, kind-config.yaml, helm-values/, devenv.yaml)
    #[arg(short = 'C', long = "dir", global = true, value_name = "DIR", env = "DEVENV_DIR")]
    pub dir: Option<PathBuf>,
    /// Environment (and cluster) name; default: `name` in devenv.yaml, else "devenv"
    #[arg(short = 'n', long = "name", global = true, value_name = "NAME", env = "DEVENV_NAME")]
    pub name: Option<String>,
    /// Cluster provider; default: `driver` in devenv.yaml, else kind
    #[arg(long, global = true, value_enum, env = "DEVENV_DRIVER")]
    pub driver: Option<Driver>,
    /// Kube context of an existing cluster (with --driver existing)
    #[arg(long, global = true, value_name = "CONTEXT", env = "DEVENV_CONTEXT")]
    pub context: Option<String>,
    /// Allow --driver existing to act on a context that does not look like a local cluster
    #[arg(long, global = true)]
    pub allow_remote: bool,
    /// Output: text for people; json (status, plan, env, tools list, version: one document;
    /// up, down, test, run: one event per line); yaml (the documents only)
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text, env = "DEVENV_OUTPUT")]
    pub output: Output,
    /// Print only warnings, errors and results
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail: -v debug lines, -vv also every tool command devenv runs, with its time
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Colours: auto (a terminal without NO_COLOR), always (also CLICOLOR_FORCE), never
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, env = "DEVENV_COLOR")]
    pub color: ColorChoice,
    /// No colours (the same as --color never; also: NO_COLOR set)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    Yaml,
}

#[derive(Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Act only on these components (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "COMPONENT")]
    pub only: Vec<String>,
    /// Leave these components alone (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "COMPONENT")]
    pub skip: Vec<String>,
    /// Do not run the smoke tests
    #[arg(long)]
    pub no_test: bool,
    /// Delete the cluster and create it again: everything in it is lost but what devenv keeps on
    /// this machine (PostgreSQL's data with postgresql.persistentData, the shared files)
    #[arg(long)]
    pub recreate: bool,
    /// Switch optional components on: monitoring, metrics-server, shared-data (remembered)
    #[arg(long, value_delimiter = ',', value_name = "COMPONENT")]
    pub with: Vec<String>,
    /// Switch optional components off again (and uninstall them)
    #[arg(long, value_delimiter = ',', value_name = "COMPONENT")]
    pub without: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Make the environment match the config: cluster, components, images, then smoke tests
    Up {
        #[command(flatten)]
        select: SelectArgs,
        /// Print the plan and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Limit for each component's install and readiness (e.g. 10m); default from devenv.yaml
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// Fail at once (exit 3) if another devenv holds this environment's lock, instead of waiting for it
        #[arg(long = "fail-if-locked", visible_alias = "no-wait")]
        no_wait: bool,
        /// Confirm --recreate (it deletes the cluster; see --recreate for what is kept) without asking
        #[arg(short, long)]
        yes: bool,
    },
    /// Show what `up` would do, step by step, with the reason for each
    Plan {
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Delete the cluster (on an existing cluster: devenv's releases only); PostgreSQL's data and
    /// the shared files stay on this machine unless --purge (idempotent)
    Down {
        /// Also delete devenv's state for it: kubeconfig, generated values, credentials, and the
        /// data kept on this machine (PostgreSQL's, the shared files; never a sharedData.path of yours)
        #[arg(long)]
        purge: bool,
        /// Fail at once (exit 3) if another devenv holds this environment's lock, instead of waiting for it
        #[arg(long = "fail-if-locked", visible_alias = "no-wait")]
        no_wait: bool,
    },
    /// Stop the cluster's nodes, keeping everything in them (kind, minikube)
    Stop {
        /// Fail at once (exit 3) if another devenv holds this environment's lock, instead of waiting for it
        #[arg(long = "fail-if-locked", visible_alias = "no-wait")]
        no_wait: bool,
    },
    /// Start a stopped cluster again, wait until every component is ready, run the smoke tests
    Start {
        /// Fail at once (exit 3) if another devenv holds this environment's lock, instead of waiting for it
        #[arg(long = "fail-if-locked", visible_alias = "no-wait")]
        no_wait: bool,
    },
    /// Cluster, nodes and components; exit 0 only when everything is healthy
    Status,
    /// Load local images into every node; images already there (by ID) are skipped
    Load {
        /// Images, with their tags (e.g. myapp:dev)
        #[arg(required = true)]
        images: Vec<String>,
        /// Fail at once (exit 3) if another devenv holds this environment's lock, instead of waiting for it
        #[arg(long = "fail-if-locked", visible_alias = "no-wait")]
        no_wait: bool,
    },
    /// Run the smoke tests against the running environment
    Test {
        /// Also write a JUnit XML report here (for CI)
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Print the variables that reach the environment (KUBECONFIG, DATABASE_URL, REDIS_URL, INGRESS_URL)
    Env {
        #[arg(long, value_enum, default_value_t = Format::Sh)]
        format: Format,
    },
    /// Bring the environment up, run CMD with its variables, exit with CMD's status
    Run {
        #[command(flatten)]
        select: SelectArgs,
        /// A new environment with a unique name, torn down on every exit path
        #[arg(long)]
        ephemeral: bool,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Check every prerequisite and the host; exit 3 if anything blocks
    Doctor,
    /// The tools devenv drives: list them, or install the pinned versions
    Tools {
        #[command(subcommand)]
        command: ToolsCommand,
    },
    /// devenv's version, and the versions of the tools it drives as found on this machine
    Version,
    /// Write the default config files into the directory
    Init {
        /// Overwrite files that already exist
        #[arg(long)]
        force: bool,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    #[command(alias = "completions")]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The command's name as typed (`tools list` for a subcommand), for the json summary.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Up { .. } => "up",
            Command::Plan { .. } => "plan",
            Command::Down { .. } => "down",
            Command::Status => "status",
            Command::Stop { .. } => "stop",
            Command::Start { .. } => "start",
            Command::Load { .. } => "load",
            Command::Test { .. } => "test",
            Command::Env { .. } => "env",
            Command::Run { .. } => "run",
            Command::Doctor => "doctor",
            Command::Tools {
                command: ToolsCommand::List,
            } => "tools list",
            Command::Tools {
                command: ToolsCommand::Install { .. },
            } => "tools install",
            Command::Init { .. } => "init",
            Command::Completion { .. } => "completion",
            Command::Version => "version",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ToolsCommand {
    /// Each tool: pinned and minimum version, and every copy found (PATH and devenv's own)
    List,
    /// Download the pinned kind, helm, kubectl, minikube into devenv's bin dir, SHA-256 checked
    Install {
        /// Tools to install (default: all four)
        tools: Vec<String>,
    },
}

/// `devenv env --format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sh,
    Fish,
    Dotenv,
    Json,
}

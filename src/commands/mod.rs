//! One file per command; shared here: loading the config, choosing the world, observing.

pub mod doctor;
pub mod down;
pub mod env;
pub mod init;
pub mod load;
pub mod plan;
pub mod run_cmd;
pub mod status;
pub mod stop;
pub mod test;
pub mod tools;
pub mod up;
pub mod version;

use crate::cli::Global;
use crate::config::{self, Config, Driver};
use crate::error::{Error, Result};
use crate::exec::{Cancel, Ledger};
use crate::output::Reporter;
use crate::plan::{Desired, Observed};
use crate::process::SystemRunner;
use crate::state::State;
use crate::world::{ClusterState, KubeTarget, World};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What every command gets.
pub struct App {
    pub global: Global,
    pub vars: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// Shared with the signal handler, which reports through it too.
    pub reporter: Arc<Reporter>,
    pub cancel: Cancel,
    pub ledger: Arc<Ledger>,
    /// Injected by in-process tests; otherwise chosen from the driver (or DEVENV_SIMULATE).
    pub world: Option<World>,
    /// The terminal to ask for confirmations on; None when stdin is not a terminal.
    pub confirm: Option<std::sync::Mutex<Box<dyn std::io::BufRead + Send>>>,
}

impl App {
    pub fn config(&self) -> Result<Config> {
        let shown = self.global.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let dir = self.cwd.join(&shown);
        if !dir.is_dir() {
            return Err(Error::usage(
                format!("--dir {}: no such directory", shown.display()),
                "name the directory that holds devenv.yaml, or run `devenv init` there",
            ));
        }
        config::load(
            &dir,
            &shown,
            &config::Overrides {
                home: self.vars.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from),
                name: self.global.name.clone(),
                driver: self.global.driver,
                context: self.global.context.clone(),
            },
        )
    }

    pub fn state(&self, config: &Config) -> State {
        State::new(&crate::state::base_dir(&self.vars), &config.project.name)
    }

    /// The world for this command, and the tools the driver needs as devenv found them (once:
    /// the real world runs the tools chosen here, and `doctor` and `up` report on the findings).
    pub fn world(&self, config: &Config, state: &State) -> Result<(World, Vec<crate::doctor::Finding>)> {
        // Checked before anything else, whichever world serves the run.
        if config.project.driver == Driver::Existing {
            self.existing_context(config)?;
        }
        let (world, tools) = self.make_world(config, state)?;
        if config.project.driver == Driver::Existing {
            self.pin_existing_context(&world, config, state)?;
        }
        Ok((world, tools))
    }

    /// `--driver existing`: the context as the user's kubeconfig has it now becomes devenv's copy
    /// for this command, so that every call of the command (nodes, records, helm, the smoke run)
    /// uses the one same connection; a copy from an earlier command would still point where the
    /// context pointed then. Refused, before any connection, when its API server is not on this
    /// machine (unless --allow-remote).
    fn pin_existing_context(&self, world: &World, config: &Config, state: &State) -> Result<()> {
        let context = self.existing_context(config)?;
        let text = world.cluster.kubeconfig(&config.project.name, &self.cancel)?;
        let server = crate::guard::server_of(&text, &context).ok_or_else(|| {
            Error::failed(
                format!("the kubeconfig of context `{context}` names no API server"),
                "check it with `kubectl config view --minify --context CONTEXT`",
            )
        })?;
        if !self.global.allow_remote {
            let resolve = |host: &str, port: u16| -> Vec<std::net::IpAddr> {
                use std::net::ToSocketAddrs;
                (host, port)
                    .to_socket_addrs()
                    .map(|a| a.map(|a| a.ip()).collect())
                    .unwrap_or_default()
            };
            let locality = crate::guard::locality(&server, &world.host.own_addresses(), resolve, || {
                world.engine.addresses(&self.cancel).unwrap_or_default()
            });
            if let crate::guard::Locality::Remote(why) = locality {
                return Err(Error::usage(
                    format!(
                        "context `{context}` does not point at a cluster on this machine ({why}); devenv will not install into it"
                    ),
                    format!(
                        "if the cluster behind `{context}` really is a development cluster you may change, add --allow-remote"
                    ),
                ));
            }
        }
        state.ensure()?;
        state.write_private("kubeconfig", &text).map(|_| ())
    }

    fn make_world(&self, config: &Config, state: &State) -> Result<(World, Vec<crate::doctor::Finding>)> {
        if let Some(w) = &self.world {
            let tools = crate::doctor::tools(w.host.as_ref(), config, &self.cancel).0;
            return Ok((w.clone(), tools));
        }
        // Only a build with the `sim` feature (tests, benchmarks) has a simulated world to open;
        // in a release build the variable does nothing. When it is used, the run says so.
        #[cfg(feature = "sim")]
        if let Some(path) = self.vars.get("DEVENV_SIMULATE").filter(|p| !p.is_empty()) {
            self.reporter.warn(&format!(
                "this run uses the SIMULATED world in {path} (DEVENV_SIMULATE, a test build): no cluster, chart or container is involved"
            ));
            let w = crate::sim::SimWorld::open(&self.cwd.join(path))?.world();
            let tools = crate::doctor::tools(w.host.as_ref(), config, &self.cancel).0;
            return Ok((w, tools));
        }
        let system: Arc<dyn crate::process::Runner> = if self.reporter.tracing() {
            Arc::new(crate::process::Traced {
                inner: Arc::new(SystemRunner),
                trace: {
                    let r = self.reporter.clone();
                    Arc::new(move |line: &str| r.trace(line))
                },
            })
        } else {
            Arc::new(SystemRunner)
        };
        let host = Arc::new(crate::adapters::host::RealHost::new(
            system.clone(),
            &self.vars,
            &self.cwd,
        ));
        // Each tool as devenv chose it (PATH, or its managed copy when that one is missing or too old).
        let (tools, programs) = crate::doctor::tools(host.as_ref(), config, &self.cancel);
        let managed = crate::tools::bin_dir(&self.vars);
        for (tool, path) in &programs {
            if path.starts_with(&managed) {
                self.reporter.info(&format!(
                    "using devenv's own {tool} ({}): the one on PATH is missing or too old",
                    path.display()
                ));
            }
        }
        let runner: Arc<dyn crate::process::Runner> = Arc::new(crate::adapters::host::ResolvingRunner {
            inner: system,
            programs,
        });
        let engine = Arc::new(crate::adapters::docker::DockerCli {
            runner: runner.clone(),
            program: "docker".into(),
            api: crate::adapters::docker::api_reaches_cli_engine("docker", &self.vars),
        });
        let cluster: Arc<dyn crate::world::ClusterProvider> = match config.project.driver {
            Driver::Kind => Arc::new(crate::adapters::kind::Kind {
                runner: runner.clone(),
                engine: engine.clone(),
                transport: Arc::new(crate::adapters::image_api::DockerApi { runner: runner.clone() }),
                logs_dir: state.path("logs"),
                kubeconfig: (!config.project.export_context).then(|| state.kubeconfig()),
            }),
            Driver::Minikube => Arc::new(crate::adapters::minikube::Minikube {
                runner: runner.clone(),
                driver: config.project.minikube_driver.clone(),
                export_context: config.project.export_context,
            }),
            Driver::Existing => Arc::new(crate::adapters::existing::Existing {
                runner: runner.clone(),
                context: self.existing_context(config)?,
                kubeconfig: state.kubeconfig(),
            }),
        };
        let world = World {
            images: Arc::new(crate::adapters::image_api::DockerApi { runner: runner.clone() }),
            host,
            engine,
            cluster,
            helm: Arc::new(crate::adapters::helm::Helm::new(runner.clone())),
            kube: Arc::new(crate::adapters::kube::KubeApi {
                helm_driver: self.vars.get("HELM_DRIVER").cloned(),
            }),
            prober: Arc::new(crate::adapters::probe::ServiceProber),
        };
        Ok((world, tools))
    }

    /// The context for `--driver existing`: named, never empty (kubectl would take an empty one
    /// as the current context, whatever that is by now).
    pub fn existing_context(&self, config: &Config) -> Result<String> {
        match config.project.context.clone() {
            Some(c) if !c.trim().is_empty() => Ok(c),
            Some(_) => Err(Error::usage(
                "the kube context is empty",
                "name it: --context NAME (see `kubectl config get-contexts`), or `context:` in devenv.yaml",
            )),
            None => Err(Error::usage(
                "the existing driver needs a kube context",
                "pass --context NAME (see `kubectl config get-contexts`), or set `context:` in devenv.yaml",
            )),
        }
    }
}

pub fn target(world: &World, state: &State, name: &str) -> KubeTarget {
    KubeTarget {
        kubeconfig: state.kubeconfig(),
        context: world.cluster.context(name),
    }
}

/// The format of devenv's record in the cluster; a record of another format is left alone.
pub const RECORD_FORMAT: &str = "1";

/// Looks at the environment without changing it: the cluster, and, when it runs, devenv's record
/// and the helm releases (one call each).
/// `charts`: also read each release's chart-version (status, plan's reasons); `up` does without.
pub fn observe(world: &World, state: &State, d: &Desired, charts: bool, cancel: &Cancel) -> Result<Observed> {
    let cluster = world.cluster.observe(&d.name, cancel)?;
    let kubeconfig_present = state.kubeconfig().is_file();
    // Containers of a create that never finished, or nodes with no control plane: nothing to
    // read in them, and the next `up` replaces them.
    let half_made = match &cluster {
        ClusterState::Absent => false,
        ClusterState::Present { nodes } => {
            (state.creating() && d.driver != crate::config::Driver::Existing)
                || (d.driver == crate::config::Driver::Kind && !nodes.iter().any(|n| n.role == "control-plane"))
        }
    };
    let mut observed = Observed {
        cluster,
        applied: None,
        others: vec![],
        releases: vec![],
        kubeconfig_present,
        images_missing: None,
        half_made,
    };
    let running = !half_made
        && matches!(&observed.cluster, ClusterState::Present { .. })
        && observed.cluster.stopped_nodes().is_empty();
    if running {
        let mut t = target(world, state, &d.name);
        let scratch;
        if !kubeconfig_present {
            // Read-only: a scratch copy, removed afterwards; the plan writes the real one.
            scratch = state.write_private(
                &format!("kubeconfig.observe.{}", std::process::id()),
                &world.cluster.kubeconfig(&d.name, cancel)?,
            )?;
            t.kubeconfig = scratch.clone();
        }
        // Two independent reads: at the same time, since they are the whole cost of a no-op `up`.
        let (applied, releases) = std::thread::scope(|s| {
            let applied = s.spawn(|| world.kube.records(&t, cancel));
            // helm's own storage through the API: no `helm` process on the no-op path.
            let releases = match world.kube.helm_releases(&t, charts, cancel) {
                Ok(Some(r)) => Ok(r),
                Ok(None) => world.helm.list(&t, cancel),
                Err(e) => Err(e),
            };
            (
                applied
                    .join()
                    .unwrap_or_else(|_| Err(crate::error::Error::failed("reading devenv's record panicked", ""))),
                releases,
            )
        });
        if !d.images.is_empty() && d.driver == crate::config::Driver::Kind {
            observed.images_missing = Some(crate::images::missing(
                world.engine.as_ref(),
                world.images.as_ref(),
                &d.name,
                &d.images,
                cancel,
            )?);
        }
        let result = applied.and_then(|records| {
            let (mine, others): (Vec<_>, Vec<_>) = records.into_iter().partition(|(env, _)| env == &d.name);
            observed.others = others;
            let a = mine.into_iter().next().map(|(_, a)| a);
            if let Some(f) = a.as_ref().and_then(|a| a.entries.get("format"))
                && f != RECORD_FORMAT
            {
                return Err(crate::error::Error::prerequisite(
                    format!("devenv's record in cluster `{}` has format {f}: a newer devenv wrote it, and this one changes nothing it does not understand", d.name),
                    "upgrade devenv, or manage this environment with the devenv that created it",
                ));
            }
            observed.applied = a;
            observed.releases = releases?;
            Ok(())
        });
        if !kubeconfig_present {
            let _ = std::fs::remove_file(&t.kubeconfig);
        }
        result?;
    }
    Ok(observed)
}

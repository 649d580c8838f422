//! What a command works from, built once per command (what kind calls the action context): the
//! configuration, the state directory, the components selected, the desired environment, and,
//! for a command that reaches the environment, the world (the real adapters or a test's
//! simulated one), where the cluster is reached and the tools as devenv found them.

use crate::cli::SelectArgs;
use crate::commands::App;
use crate::config::Config;
use crate::doctor::Finding;
use crate::error::Result;
use crate::plan::{Desired, Observed, Selection};
use crate::state::State;
use crate::world::{ClusterState, KubeTarget, World};

/// The configuration side: no world, no tool (`devenv env` needs nothing more).
pub struct Base {
    pub config: Config,
    pub state: State,
    pub selection: Selection,
    pub desired: Desired,
}

impl Base {
    pub fn new(app: &App, select: Option<&SelectArgs>) -> Result<Base> {
        let mut config = app.config()?;
        let state = app.state(&config);
        // The ports the environment's cluster was made with, when they are its own.
        if config.wants_own_ports()
            && let Some(ports) = state.ports()
        {
            config.use_host_ports(&ports)?;
        }
        let selection = selection(&state, select)?;
        let desired = Desired::from_config(&config, &selection)?;
        Ok(Base {
            config,
            state,
            selection,
            desired,
        })
    }
}

pub struct Context<'a> {
    pub app: &'a App,
    pub config: Config,
    pub state: State,
    pub selection: Selection,
    pub desired: Desired,
    pub world: World,
    /// The cluster, always through devenv's own kubeconfig and an explicit context.
    pub target: KubeTarget,
    /// The tools the driver needs, each found once for the command (`doctor` reports on these;
    /// `up` stops on a blocking one).
    pub tools: Vec<Finding>,
}

impl<'a> Context<'a> {
    pub fn new(app: &'a App, select: Option<&SelectArgs>) -> Result<Context<'a>> {
        let mut base = Base::new(app, select)?;
        let (world, tools) = app.world(&base.config, &base.state)?;
        if base.config.wants_own_ports() && base.state.ports().is_none() {
            let ports = own_ports(&world, &base.config, &app.cancel);
            base.config.use_host_ports(&ports)?;
            base.desired = Desired::from_config(&base.config, &base.selection)?;
        }
        let target = KubeTarget {
            kubeconfig: base.state.kubeconfig(),
            context: world.cluster.context(&base.desired.name),
        };
        Ok(Context {
            app,
            config: base.config,
            state: base.state,
            selection: base.selection,
            desired: base.desired,
            world,
            target,
            tools,
        })
    }

    pub fn name(&self) -> &str {
        &self.desired.name
    }

    /// Looks at the environment without changing it: the cluster, and, when it runs, devenv's
    /// records and the helm releases. `charts`: also each release's chart-version (status, plan's
    /// reasons); `up` does without.
    pub fn observe(&self, charts: bool) -> Result<Observed> {
        crate::commands::observe(&self.world, &self.state, &self.desired, charts, &self.app.cancel)
    }

    /// The cluster exists (running or not).
    pub fn cluster_exists(&self) -> Result<bool> {
        Ok(!matches!(
            self.world.cluster.observe(self.name(), &self.app.cancel)?,
            ClusterState::Absent
        ))
    }
}

/// The host ports of an environment that gets its own (by node port): the ones its cluster's
/// node publishes when it exists (the engine keeps them with the container, stopped or not),
/// else free ones chosen now, none that another kind node keeps for itself.
fn own_ports(world: &World, config: &Config, cancel: &crate::exec::Cancel) -> std::collections::BTreeMap<u16, u16> {
    let published = world
        .engine
        .published(crate::world::CLUSTER_LABEL, cancel)
        .unwrap_or_default();
    let mine: std::collections::BTreeMap<u16, u16> = published
        .iter()
        .filter(|p| p.owner == config.project.name)
        .map(|p| (p.container_port, p.host_port))
        .collect();
    let wanted: Vec<&crate::config::kind::HostMapping> = config.kind.mappings.iter().collect();
    if wanted.iter().all(|m| mine.contains_key(&m.container_port)) && !mine.is_empty() {
        return mine;
    }
    let avoid: Vec<u16> = published.iter().map(|p| p.host_port).collect();
    let mut out = std::collections::BTreeMap::new();
    for address in wanted
        .iter()
        .map(|m| m.listen_address.as_str())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let here: Vec<&&crate::config::kind::HostMapping> =
            wanted.iter().filter(|m| m.listen_address == address).collect();
        let free = world.host.free_ports(address, here.len(), &avoid);
        for (m, p) in here.into_iter().zip(free) {
            out.insert(m.container_port, p);
        }
    }
    out
}

/// What a command acts on: its flags, and the optional components `--with` switched on before
/// (remembered in the state dir) plus this command line's `--with`, less its `--without`.
pub fn selection(state: &crate::state::State, s: Option<&SelectArgs>) -> Result<Selection> {
    // A name this devenv does not know (a newer one wrote it, or a hand edit) is not the user's typo now.
    let mut with: Vec<String> = state
        .remembered_with()
        .into_iter()
        .filter(|n| crate::config::project::OPTIONAL.contains(&n.as_str()))
        .collect();
    let mut sel = Selection::default();
    if let Some(s) = s {
        for n in &s.with {
            if s.without.contains(n) {
                return Err(crate::error::Error::usage(
                    format!("--with {n} and --without {n} contradict each other"),
                    "keep one of them",
                ));
            }
            if !with.contains(n) {
                with.push(n.clone());
            }
        }
        with.retain(|n| !s.without.contains(n));
        sel.only = s.only.clone();
        sel.skip = s.skip.clone();
        sel.no_test = s.no_test;
        sel.without = s.without.clone();
    }
    sel.with = with;
    Ok(sel)
}

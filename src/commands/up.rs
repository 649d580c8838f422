//! `devenv up`: observe, plan, then run the plan's changing steps on the executor.

use super::{App, observe, target};
use crate::cli::SelectArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::exec::{self, Event, Scope, StepCtx, Task};
use crate::output::seconds;
use crate::plan::{self, Action, ComponentSpec, Desired, Kind, Plan};
use crate::state::State;
use crate::world::{ClusterSpec, InstallSpec, KubeTarget, World};
use std::time::Instant;

pub struct UpArgs<'a> {
    pub select: &'a SelectArgs,
    pub dry_run: bool,
    pub timeout: Option<&'a str>,
    pub no_wait: bool,
    pub yes: bool,
}

pub fn run(app: &App, args: UpArgs) -> Result<()> {
    let started = Instant::now();
    let config = app.config()?;
    let mut timeouts = config.project.timeouts;
    if let Some(t) = args.timeout {
        timeouts.component = crate::config::project::parse_duration(t)
            .map_err(|m| Error::usage(format!("--timeout: {m}"), "write a duration such as 90s, 5m or 1h"))?;
    }
    if args.select.recreate && config.project.driver == crate::config::Driver::Existing {
        return Err(Error::usage(
            "--recreate deletes the cluster, and devenv never deletes a cluster it did not create",
            "drop --recreate; `devenv down` removes what devenv installed in the existing cluster",
        ));
    }
    let state = app.state(&config);
    let selection = super::plan::selection(&state, Some(args.select))?;
    let desired = Desired::from_config(&config, &selection)?;
    let world = app.world(&config, &state)?;
    // Missing or too-old tools stop the run before anything is touched (exit 3).
    if !args.dry_run {
        crate::doctor::stop_if_blocking(&crate::doctor::tools(world.host.as_ref(), &config, &app.cancel).0)?;
    }
    let _lock = state.lock(args.no_wait, &app.cancel, |m| app.reporter.info(m))?;
    let observed = observe(&world, &state, &desired, args.dry_run, &app.cancel)?;
    let p = plan::plan(
        &desired,
        &observed,
        plan::Options {
            recreate: args.select.recreate,
        },
    );
    // Another environment's releases in the same cluster are never this one's to change.
    if let Some((release, namespace, owner)) = plan::owned_elsewhere(&desired, &observed).into_iter().next() {
        return Err(Error::prerequisite(
            format!(
                "release {release} (namespace {namespace}) belongs to devenv environment `{owner}` (its record {}/{}); environment `{}` changes nothing of another's, so nothing was changed",
                crate::adapters::kubeapi::RECORD_NAMESPACE,
                crate::adapters::kubeapi::configmap_name(&owner),
                desired.name
            ),
            format!("manage it as that environment (`devenv -n {owner} up`), or point this one at another cluster"),
        ));
    }
    // Images to load must exist on this machine before anything changes.
    if !args.dry_run && p.steps.iter().any(|s| s.id == "images" && s.kind.mutates()) {
        for img in &desired.images {
            if world.images.local_image(img, &app.cancel)?.is_none() {
                return Err(Error::prerequisite(
                    format!("image `{img}` (devenv.yaml images) is not on this machine; nothing was changed"),
                    format!("build it (`docker build -t {img} .`) or pull it (`docker pull {img}`)"),
                ));
            }
        }
    }
    // A cluster about to be created needs its host ports free, the engine and disk fit: checked now.
    if !args.dry_run
        && p.steps
            .iter()
            .any(|s| s.id == "cluster" && matches!(s.kind, Kind::Create | Kind::Recreate))
    {
        let mut f = crate::doctor::engine(world.host.as_ref(), &config, &app.cancel);
        f.extend(crate::doctor::ports(world.host.as_ref(), &config));
        crate::doctor::stop_if_blocking(&f)?;
    }
    if args.dry_run {
        app.reporter.data(&super::plan::render(&p));
        app.reporter.json(super::plan::to_json(&p));
        return Ok(());
    }
    // `--with` / `--without` last until changed again: later commands see the same components.
    if selection.with != state.remembered_with() {
        state.remember_with(&selection.with)?;
    }
    for n in &p.notes {
        app.reporter.warn(n);
    }
    if p.changes() == 0 {
        app.reporter.info(&format!(
            "environment `{}` is up to date: nothing to do ({})",
            desired.name,
            seconds(started.elapsed())
        ));
        app.reporter.json(serde_json::json!({"event": "summary", "command": "up", "result": "unchanged", "changes": 0, "elapsed_ms": started.elapsed().as_millis() as u64}));
        return Ok(());
    }
    if let Some(s) = p.steps.iter().find(|s| s.kind == Kind::Recreate)
        && !args.yes
    {
        let kept = desired.persistent_data.then(|| state.data_dir());
        confirm_recreate(app, &desired.name, &s.reason, kept.as_deref())?;
    }
    install_notices(app, &state, &p, &desired);
    let run = Run {
        world: &world,
        state: &state,
        desired: &desired,
        config: &config,
        target: target(&world, &state, &desired.name),
        timeouts,
        fresh_cluster: p
            .steps
            .iter()
            .any(|s| s.id == "cluster" && matches!(s.kind, Kind::Create | Kind::Recreate)),
        shared_waits: p.shared_waits,
    };
    let tasks = p
        .steps
        .iter()
        .filter(|s| s.kind.mutates())
        .map(|s| {
            let label = format!("{} {}", s.kind.word(), s.target);
            let run = &run;
            let step = s.clone();
            Task::new(s.id.clone(), label, s.deps.clone(), move |ctx: &StepCtx| {
                run.step(&step, ctx, &app.reporter)
            })
        })
        .collect();
    let outcome = exec::execute(tasks, &app.cancel, &app.ledger, &|e| match e {
        Event::Started { id, label } => app.reporter.step_started(id, label),
        Event::Finished { result } => app.reporter.step_finished(result),
        Event::Undone(u) => app.reporter.undone(u),
    });
    let changed = outcome.results.iter().filter(|r| r.status == exec::Status::Ok).count();
    match outcome.error {
        Some(e) => Err(e),
        None => {
            app.reporter.info(&format!(
                "environment `{}` is up: {changed} step(s) in {}",
                desired.name,
                seconds(started.elapsed())
            ));
            app.reporter.json(serde_json::json!({"event": "summary", "command": "up", "result": "ok", "changes": changed, "elapsed_ms": started.elapsed().as_millis() as u64}));
            Ok(())
        }
    }
}

/// Recreating deletes the cluster with every database in it: ask on a terminal, else require --yes.
fn confirm_recreate(app: &App, name: &str, reason: &str, kept: Option<&std::path::Path>) -> Result<()> {
    let what = match kept {
        Some(dir) => format!(
            "--recreate deletes cluster `{name}` and everything in it except PostgreSQL's data, which is kept in {} (Redis's data is lost)",
            dir.display()
        ),
        None => format!("--recreate deletes cluster `{name}` and all its data (PostgreSQL, Redis, everything in it)"),
    };
    let Some(stdin) = &app.confirm else {
        return Err(Error::usage(
            format!("{what}; nothing was changed"),
            "run again with --yes to confirm",
        ));
    };
    eprint!("{what}.\n({reason})\nType the environment name `{name}` to go on: ");
    let mut line = String::new();
    let _ = stdin.lock().unwrap_or_else(|e| e.into_inner()).read_line(&mut line);
    if line.trim() == name {
        Ok(())
    } else {
        Err(Error::usage(
            format!("not confirmed; cluster `{name}` was left as it is"),
            "type the environment name exactly, or pass --yes",
        ))
    }
}

/// What a component asks to be told once per environment, when devenv installs it (that
/// ingress-nginx is retired upstream).
fn install_notices(app: &App, state: &State, p: &Plan, desired: &Desired) {
    for c in &desired.components {
        let Some(notice) = &c.install_notice else { continue };
        let installing = p.steps.iter().any(|s| s.id == c.name && s.kind == Kind::Create);
        let marker = format!("notice-{}", c.name);
        if installing && !state.path(&marker).exists() {
            app.reporter.warn(notice);
            let _ = state.write_private(&marker, "shown\n");
        }
    }
}

struct Run<'a> {
    world: &'a World,
    state: &'a State,
    desired: &'a Desired,
    config: &'a Config,
    target: KubeTarget,
    timeouts: crate::config::project::Timeouts,
    /// The plan creates (or recreates) the cluster, so nothing in it predates this run.
    fresh_cluster: bool,
    shared_waits: bool,
}

impl Run<'_> {
    fn step(&self, step: &plan::Step, ctx: &StepCtx, reporter: &crate::output::Reporter) -> Result<()> {
        let name = &self.desired.name;
        let cancel = ctx.cancel;
        match &step.action {
            Action::Nothing => Ok(()),
            Action::CreateCluster => self.create_cluster(ctx),
            Action::RecreateCluster => {
                self.world.cluster.delete(name, cancel)?;
                let _ = std::fs::remove_file(self.state.kubeconfig());
                self.create_cluster(ctx)
            }
            Action::StartCluster => self.world.cluster.start(name, cancel),
            Action::WriteKubeconfig => self.write_kubeconfig(cancel),
            Action::Install(i) => self.install(&self.desired.components[*i], step.kind == Kind::Create, ctx),
            Action::RecoverAndInstall(rel, i) => {
                self.world.helm.recover(&self.target, rel, cancel)?;
                self.install(&self.desired.components[*i], false, ctx)
            }
            Action::Uninstall { release, namespace } => {
                self.world.helm.uninstall(&self.target, release, namespace, cancel)?;
                self.world
                    .kube
                    .set_applied(&self.target, name, &format!("component.{release}"), None, cancel)?;
                let why = step.reason.split(';').next().unwrap_or("");
                reporter.info(&format!("   {release} uninstalled: {why}"));
                Ok(())
            }
            Action::EnsureShared => self.ensure_shared(cancel, reporter),
            Action::RemoveShared { pv, namespace, claim } => {
                self.world
                    .kube
                    .delete_volume(&self.target, pv, namespace, claim, cancel)?;
                self.world
                    .kube
                    .set_applied(&self.target, name, "volume.shared-data", None, cancel)?;
                let why = step.reason.split(';').next().unwrap_or("");
                let dir = match &self.config.project.shared.path {
                    Some(p) => p.clone(),
                    None => self.state.data_dir().join(crate::components::shared_data::DATA_DIR),
                };
                reporter.info(&format!(
                    "   shared-data volume removed: {why}; its files stay in {}",
                    dir.display()
                ));
                Ok(())
            }
            Action::LoadImages => {
                let report = self
                    .world
                    .cluster
                    .load_images(name, &self.desired.images, &|_, _| {}, cancel)?;
                for line in report.lines() {
                    reporter.info(&format!("   {line}"));
                }
                Ok(())
            }
            Action::Smoke => self.smoke(ctx, reporter),
        }
    }

    /// Makes a volume's directory on this machine, then the volume and its claim.
    fn ensure_volume(&self, v: &crate::world::VolumeSpec, cancel: &crate::exec::Cancel) -> Result<std::path::PathBuf> {
        let dir = self.state.prepare_host_dir(&v.host_dir)?;
        self.world.kube.ensure_volume(&self.target, v, cancel)?;
        Ok(dir)
    }

    fn ensure_shared(&self, cancel: &crate::exec::Cancel, reporter: &crate::output::Reporter) -> Result<()> {
        let Some(sh) = &self.desired.shared else {
            return Ok(());
        };
        let v = &sh.volume;
        let dir = self.ensure_volume(v, cancel)?;
        reporter.info(&format!(
            "   claim {}/{} ({}) shares {}",
            v.namespace,
            v.claim,
            v.access.as_str(),
            dir.display()
        ));
        // What was made, so that switching it off later removes exactly this.
        self.world.kube.set_applied(
            &self.target,
            &self.desired.name,
            "volume.shared-data",
            Some(&sh.record()),
            cancel,
        )
    }

    fn write_kubeconfig(&self, cancel: &crate::exec::Cancel) -> Result<()> {
        let text = self.world.cluster.kubeconfig(&self.desired.name, cancel)?;
        self.state.write_private("kubeconfig", &text).map(|_| ())
    }

    /// A create is done only when the cluster exists, its kubeconfig is written, every node is
    /// Ready and devenv has recorded how it was built. Until then the ledger deletes it again, so
    /// that the next `up` never adopts a cluster devenv cannot compare with the files.
    fn create_cluster(&self, ctx: &StepCtx) -> Result<()> {
        let mut mounts = Vec::new();
        if self.desired.mounts.contains(&crate::config::kind::DATA_MOUNT) {
            // The data directory outlives the cluster: `down` keeps it, `down --purge` removes it.
            // Its own mode lets the database's user in the node write; the state dir above it
            // (0700) keeps other users of this machine out.
            mounts.push((self.state.prepare_data_dir()?, crate::config::kind::DATA_MOUNT));
        }
        if let Some(sh) = self.desired.shared.as_ref().filter(|s| s.user_dir().is_some()) {
            let dir = self.state.prepare_host_dir(&sh.volume.host_dir)?;
            mounts.push((dir, crate::plan::desired::SHARED_MOUNT));
        }
        let kind_config = if mounts.is_empty() {
            self.config.kind_config_text.clone()
        } else {
            crate::config::kind::with_mounts(&self.config.kind_config_text, &mounts)?
        };
        let config_path = self.state.write_private("kind-config.yaml", &kind_config)?;
        let spec = ClusterSpec {
            name: self.desired.name.clone(),
            node_image: self.config.versions.kind_node_image.clone(),
            config_path,
            kubernetes_version: self.config.versions.minikube_kubernetes.clone(),
            wait: self.timeouts.cluster,
        };
        let cluster = self.world.cluster.clone();
        let name = spec.name.clone();
        let kubeconfig = self.state.kubeconfig();
        let undo = ctx.ledger.record(
            format!("cluster {name} (half-created by this run)"),
            Scope::OnFailure,
            move || {
                let _ = std::fs::remove_file(&kubeconfig);
                cluster.delete(&name, &crate::exec::Cancel::new())
            },
        );
        let cancel = ctx.cancel;
        self.world.cluster.create(&spec, cancel)?;
        self.write_kubeconfig(cancel)?;
        // kind's own --wait only warns when it runs out of time; this one fails.
        self.world
            .kube
            .wait_nodes_ready(&self.target, self.timeouts.cluster, cancel)?;
        self.world
            .kube
            .set_applied(&self.target, &spec.name, "format", Some(super::RECORD_FORMAT), cancel)?;
        // Which node paths this cluster has: a volume needing a missing one waits for --recreate.
        self.world.kube.set_applied(
            &self.target,
            &spec.name,
            "mounts",
            Some(&self.desired.mounts.join(",")),
            cancel,
        )?;
        self.world.kube.set_applied(
            &self.target,
            &spec.name,
            "cluster",
            Some(&self.desired.cluster_digest),
            cancel,
        )?;
        ctx.ledger.forget(undo);
        Ok(())
    }

    fn install(&self, c: &ComponentSpec, fresh: bool, ctx: &StepCtx) -> Result<()> {
        let mut files = Vec::new();
        for v in &c.values {
            files.push(match &v.path {
                Some(p) => p.clone(),
                None => self.state.write_private(&format!("values/{}.yaml", c.name), &v.text)?,
            });
        }
        // devenv's values: one mapping, written once, after the user's files so that it wins.
        // Generated passwords reach the chart in this user-only file only, never on a command line.
        let generated = if c.secrets.is_empty() {
            c.generated.clone()
        } else {
            let creds = self.state.credentials()?;
            c.generated_with(|s| creds.secret(s).to_string())
        };
        if generated.as_object().is_some_and(|m| !m.is_empty()) {
            files.push(self.state.write_private(
                &format!("values/{}.devenv.yaml", c.name),
                &crate::components::values::to_yaml(&generated),
            )?);
        }
        for v in &c.volumes {
            self.ensure_volume(v, ctx.cancel)?;
        }
        let spec = InstallSpec {
            release: c.name.clone(),
            namespace: c.namespace.clone(),
            chart: c.chart.chart.clone(),
            repository: c.chart.repository.clone(),
            version: c.chart.version.clone(),
            values_files: files,
            timeout: self.timeouts.component,
        };
        // A release this run is adding to a cluster that already existed is removed again if its
        // install does not complete (helm would otherwise leave it `pending-install`).
        let key = format!("component.{}", c.name);
        let undo = (fresh && !self.fresh_cluster).then(|| {
            let (helm, kube, t, rel, ns, env, key) = (
                self.world.helm.clone(),
                self.world.kube.clone(),
                self.target.clone(),
                c.name.clone(),
                c.namespace.clone(),
                self.desired.name.clone(),
                key.clone(),
            );
            ctx.ledger.record(
                format!("release {rel} (half-installed by this run)"),
                Scope::OnFailure,
                move || {
                    helm.uninstall(&t, &rel, &ns, &crate::exec::Cancel::new())?;
                    kube.set_applied(&t, &env, &key, None, &crate::exec::Cancel::new())
                },
            )
        });
        // Recorded before helm runs: a release that never gets ready is still devenv's, so that
        // switching it off later uninstalls it.
        if fresh {
            self.world.kube.set_applied(
                &self.target,
                &self.desired.name,
                &key,
                Some(crate::plan::INSTALLING),
                ctx.cancel,
            )?;
        }
        self.world.helm.upgrade_install(&self.target, &spec, ctx.cancel)?;
        // Ready means every workload of the release (then what its operator makes); when it is
        // not, the error says why.
        let started = std::time::Instant::now();
        for w in &c.ready {
            let left = self.timeouts.component.saturating_sub(started.elapsed());
            self.world
                .kube
                .wait_ready(&self.target, w, left.max(std::time::Duration::from_secs(1)), ctx.cancel)?;
        }
        if let Some(id) = undo {
            ctx.ledger.forget(id);
        }
        self.world
            .kube
            .set_applied(&self.target, &self.desired.name, &key, Some(&c.digest), ctx.cancel)
    }

    fn smoke(&self, ctx: &StepCtx, reporter: &crate::output::Reporter) -> Result<()> {
        super::smoke::run(
            &super::smoke::Smoke {
                world: self.world,
                state: self.state,
                desired: self.desired,
                target: &self.target,
                timeout: self.timeouts.test,
                skip_shared: self.shared_waits,
            },
            ctx,
            reporter,
            None,
        )?;
        self.world.kube.set_applied(
            &self.target,
            &self.desired.name,
            "smoke",
            Some(&self.desired.smoke_digest),
            ctx.cancel,
        )
    }
}

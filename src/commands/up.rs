//! `devenv up`: build the context, observe, plan, check what must hold before any change, then
//! run the plan's changing steps (`crate::steps`) on the executor and report.

use super::App;
use crate::cli::SelectArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::exec::{self, Event, StepCtx, Task};
use crate::output::seconds;
use crate::plan::{self, Change, Plan, StepId};
use crate::steps::Steps;
use std::time::Instant;

pub struct UpArgs<'a> {
    pub select: &'a SelectArgs,
    pub dry_run: bool,
    pub timeout: Option<&'a str>,
    pub no_wait: bool,
    pub yes: bool,
    /// `devenv start`: start the cluster, wait for what it holds, run the smoke tests, and
    /// change nothing else.
    pub start_only: bool,
}

pub fn run(app: &App, args: UpArgs) -> Result<()> {
    let started = Instant::now();
    let ctx = Context::new(app, Some(args.select))?;
    let mut timeouts = ctx.config.project.timeouts;
    if let Some(t) = args.timeout {
        timeouts.component = crate::config::project::parse_duration(t)
            .map_err(|m| Error::usage(format!("--timeout: {m}"), "write a duration such as 90s, 5m or 1h"))?;
    }
    if args.select.recreate && ctx.config.project.driver == crate::config::Driver::Existing {
        return Err(Error::usage(
            "--recreate deletes the cluster, and devenv never deletes a cluster it did not create",
            "drop --recreate; `devenv down` removes what devenv installed in the existing cluster",
        ));
    }
    // Missing or too-old tools stop the run before anything is touched (exit 3).
    if !args.dry_run {
        crate::doctor::stop_if_blocking(&ctx.tools)?;
        for f in ctx.tools.iter().filter(|f| f.level == crate::doctor::Level::Warning) {
            app.reporter.warn(&format!(
                "{}{}",
                f.message,
                f.help.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
            ));
        }
    }
    let _lock = ctx.state.lock(args.no_wait, &app.cancel, |m| app.reporter.info(m))?;
    let mut observed = ctx.observe(args.dry_run)?;
    if args.start_only {
        match &observed.cluster {
            crate::world::ClusterState::Absent => {
                return Err(Error::failed(
                    format!("environment `{}` has no cluster to start", ctx.name()),
                    "`devenv up` creates it",
                ));
            }
            _ if observed.half_made => {
                return Err(Error::failed(
                    format!(
                        "environment `{}` has only a half-made cluster (a create that did not finish)",
                        ctx.name()
                    ),
                    "`devenv up` removes it and creates the cluster again",
                ));
            }
            _ => {}
        }
    }
    // A stopped cluster (`devenv stop`, a reboot, a Docker restart) is started first, then read
    // like any other: devenv's record, not the containers' state, decides what is current.
    let stopped = !observed.half_made && !observed.cluster.stopped_nodes().is_empty();
    let restarted = !args.dry_run && !args.select.recreate && (stopped || args.start_only);
    if restarted && stopped {
        let names = observed.cluster.stopped_nodes().join(", ");
        start_cluster(&ctx, &names, timeouts.cluster)?;
        observed = ctx.observe(false)?;
    }
    let mut p = plan::plan(
        &ctx.desired,
        &observed,
        plan::Options {
            recreate: args.select.recreate,
            restarted,
        },
    );
    if args.start_only {
        // Only what a start needs; what the files changed since waits for `up`.
        let other: Vec<String> = p
            .steps
            .iter()
            .filter(|s| s.change.mutates() && !matches!(s.action, plan::Action::WaitReady(_) | plan::Action::Smoke))
            .map(|s| format!("{} {}", s.change.word(), s.target))
            .collect();
        if !other.is_empty() {
            app.reporter.warn(&format!(
                "the files changed since this environment was last brought up ({}); `devenv up` applies that",
                other.join(", ")
            ));
        }
        for s in &mut p.steps {
            if s.change.mutates() && !matches!(s.action, plan::Action::WaitReady(_) | plan::Action::Smoke) {
                s.change = Change::Keep;
                s.action = plan::Action::Nothing;
            }
        }
    }
    // Another environment's releases in the same cluster are never this one's to change.
    if let Some((release, namespace, owner)) = plan::owned_elsewhere(&ctx.desired, &observed).into_iter().next() {
        return Err(Error::prerequisite(
            format!(
                "release {release} (namespace {namespace}) belongs to devenv environment `{owner}` (its record {}/{}); environment `{}` changes nothing of another's, so nothing was changed",
                crate::adapters::kube::RECORD_NAMESPACE,
                crate::adapters::kube::configmap_name(&owner),
                ctx.name()
            ),
            format!("manage it as that environment (`devenv -n {owner} up`), or point this one at another cluster"),
        ));
    }
    if !args.dry_run {
        check_before_changes(&ctx, &p)?;
    }
    if args.dry_run {
        app.reporter.data(&super::plan::render(&p));
        app.reporter.json(super::plan::to_json(&p));
        return Ok(());
    }
    // `--with` / `--without` last until changed again: later commands see the same components.
    if ctx.selection.with != ctx.state.remembered_with() {
        ctx.state.remember_with(&ctx.selection.with)?;
    }
    for n in &p.notes {
        app.reporter.warn(n);
    }
    if p.changes() == 0 {
        app.reporter.info(&format!(
            "environment `{}` is up to date: nothing to do ({})",
            ctx.name(),
            seconds(started.elapsed())
        ));
        app.reporter.json(serde_json::json!({"event": "summary", "command": "up", "result": "unchanged", "changes": 0, "elapsed_ms": started.elapsed().as_millis() as u64}));
        return Ok(());
    }
    // A half-made cluster holds nothing to lose: it is replaced without asking.
    if let Some(s) = p
        .steps
        .iter()
        .find(|s| s.change == Change::Recreate && s.action != plan::Action::ReplaceHalfMade)
        && !args.yes
    {
        let fate = ctx.desired.deletion_keeps(Some(&ctx.state.data_dir()));
        confirm_recreate(app, ctx.name(), &s.reason, &fate)?;
    }
    install_notices(&ctx, &p);
    let steps = Steps {
        ctx: &ctx,
        timeouts,
        fresh_cluster: p.makes_cluster(),
        shared_waits: p.shared_waits,
    };
    // Each step's error as it was (with its help), for the record of failures `status` shows.
    let errors = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let tasks = p
        .steps
        .iter()
        .filter(|s| s.change.mutates())
        .map(|s| {
            let label = format!("{} {}", s.change.word(), s.target);
            let (steps, step, errors) = (&steps, s.clone(), &errors);
            let deps = s.deps.iter().map(|d| d.to_string()).collect();
            Task::new(s.id.to_string(), label, deps, move |sc: &StepCtx| {
                let r = steps.run(&step, sc);
                if let Err(e) = &r {
                    let f = crate::state::Failure::now("up", e);
                    errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(step.id.to_string(), f);
                }
                r
            })
        })
        .collect();
    let outcome = exec::execute(
        tasks,
        exec::OnFailure::FinishRunning,
        &app.cancel,
        &app.ledger,
        &|e| match e {
            Event::Started { id, label } => app.reporter.step_started(id, label),
            Event::Finished { result } => app.reporter.step_finished(result),
            Event::Undone(u) => app.reporter.undone(u),
        },
    );
    let changed = outcome.results.iter().filter(|r| r.status == exec::Status::Ok).count();
    let mut errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    let failures = outcome.results.iter().filter_map(|r| match r.status {
        exec::Status::Ok => Some((r.id.clone(), None)),
        exec::Status::Failed(_) => Some((r.id.clone(), errors.remove(&r.id))),
        exec::Status::Cancelled | exec::Status::Skipped => None,
    });
    if let Err(e) = ctx.state.update_failures(failures) {
        app.reporter.warn(&format!(
            "could not keep the record of failures for `devenv status`: {e}"
        ));
    }
    // The step whose error ends the run (the first to fail).
    let first = outcome.error.as_ref().map(|e| e.to_string());
    let failed_step = outcome
        .results
        .iter()
        .find(|r| matches!(&r.status, exec::Status::Failed(m) if Some(m) == first.as_ref()))
        .map(|r| r.id.clone());
    match outcome.error {
        Some(e) => Err(match failed_step {
            Some(id) if id != StepId::Smoke.to_string() => e.in_step(&id),
            _ => e,
        }),
        None => {
            app.reporter.info(&format!(
                "environment `{}` is up: {changed} step(s) in {}",
                ctx.name(),
                seconds(started.elapsed())
            ));
            app.reporter.json(serde_json::json!({"event": "summary", "command": "up", "result": "ok", "changes": changed, "elapsed_ms": started.elapsed().as_millis() as u64}));
            Ok(())
        }
    }
}

/// Starts a stopped cluster as one reported step: its nodes, a fresh kubeconfig (the API
/// server's port or the node's address may have changed) and every node Ready.
fn start_cluster(ctx: &Context, stopped: &str, wait: std::time::Duration) -> Result<()> {
    let app = ctx.app;
    let task = Task::new(
        StepId::Cluster.to_string(),
        format!("start cluster {} (stopped: {stopped})", ctx.name()),
        vec![],
        |sc: &StepCtx| {
            ctx.world.cluster.start(ctx.name(), sc.cancel)?;
            crate::steps::cluster::write_kubeconfig(ctx, sc.cancel)?;
            ctx.world.kube.wait_nodes_ready(&ctx.target, wait, sc.cancel)
        },
    );
    let outcome = exec::execute(
        vec![task],
        exec::OnFailure::CancelSiblings,
        &app.cancel,
        &app.ledger,
        &|e| match e {
            Event::Started { id, label } => app.reporter.step_started(id, label),
            Event::Finished { result } => app.reporter.step_finished(result),
            Event::Undone(u) => app.reporter.undone(u),
        },
    );
    outcome.error.map_or(Ok(()), |e| Err(e.in_step("cluster")))
}

/// What must hold before `up` changes anything (each stops it with exit 3): the images to load
/// are on this machine; a cluster about to be created has its host ports free and an engine and
/// disk that fit.
fn check_before_changes(ctx: &Context, p: &Plan) -> Result<()> {
    if p.step(&StepId::Images).is_some_and(|s| s.change.mutates()) {
        for img in &ctx.desired.images {
            if ctx.world.images.local_image(img, &ctx.app.cancel)?.is_none() {
                return Err(Error::prerequisite(
                    format!("image `{img}` (devenv.yaml images) is not on this machine; nothing was changed"),
                    format!("build it (`docker build -t {img} .`) or pull it (`docker pull {img}`)"),
                ));
            }
        }
    }
    if p.makes_cluster() {
        let host = ctx.world.host.as_ref();
        let mut f = crate::doctor::kind_provider(&ctx.config, &ctx.app.vars);
        f.extend(crate::doctor::engine(host, &ctx.config, &ctx.app.cancel));
        let published = ctx
            .world
            .engine
            .published(crate::world::CLUSTER_LABEL, &ctx.app.cancel)
            .unwrap_or_default();
        f.extend(crate::doctor::ports(host, &ctx.config, &published, ctx.name()));
        crate::doctor::stop_if_blocking(&f)?;
    }
    if p.step(&StepId::Cache).is_some_and(|s| s.change.mutates()) {
        fill_cache(ctx, p)?;
    }
    Ok(())
}

/// Pulls the pinned images this machine's engine lacks, at the same time, before anything is
/// changed: one that cannot be pulled stops `up` (exit 3) with the engine's message, unless
/// every node has it already.
fn fill_cache(ctx: &Context, p: &Plan) -> Result<()> {
    let app = ctx.app;
    let mut missing = Vec::new();
    for i in &ctx.desired.cached_images {
        if ctx.world.images.local_image(i, &app.cancel)?.is_none() {
            missing.push(i.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let platform = ctx
        .world
        .host
        .engine(&app.cancel)
        .ok()
        .map(|f| format!("linux/{}", crate::images::arch(&f.arch)));
    let tasks = missing
        .iter()
        .map(|i| {
            let platform = platform.clone();
            Task::new(
                i.clone(),
                format!("pull {i} (into this machine's image cache)"),
                vec![],
                move |sc: &StepCtx| ctx.world.images.pull(i, platform.as_deref(), sc.cancel),
            )
        })
        .collect();
    let ledger = exec::Ledger::new();
    let outcome = exec::execute(
        tasks,
        exec::OnFailure::FinishRunning,
        &app.cancel,
        &ledger,
        &|e| match e {
            Event::Started { id, label } => app.reporter.step_started(id, label),
            Event::Finished { result } => app.reporter.step_finished(result),
            Event::Undone(u) => app.reporter.undone(u),
        },
    );
    if let Some(Error::Interrupted(s)) = outcome.error {
        return Err(Error::Interrupted(s));
    }
    let failed: Vec<(&str, &str)> = outcome
        .results
        .iter()
        .filter_map(|r| match &r.status {
            exec::Status::Failed(m) => Some((r.id.as_str(), m.as_str())),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    // The nodes of a running cluster may have it already (loaded before, or pulled by them).
    let on_nodes = if p.makes_cluster() {
        Vec::new()
    } else {
        let names: Vec<String> = failed.iter().map(|(i, _)| i.to_string()).collect();
        let lacking = crate::images::missing_on_nodes(
            ctx.world.engine.as_ref(),
            ctx.world.images.as_ref(),
            ctx.name(),
            &names,
            &app.cancel,
        )
        .unwrap_or(names.clone());
        names.into_iter().filter(|n| !lacking.contains(n)).collect()
    };
    let blocking: Vec<String> = failed
        .iter()
        .filter(|(i, _)| !on_nodes.iter().any(|n| n == i))
        .map(|(i, m)| format!("{i}: {}", m.lines().next().unwrap_or_default()))
        .collect();
    for (i, _) in failed.iter().filter(|(i, _)| on_nodes.iter().any(|n| n == i)) {
        app.reporter
            .warn(&format!("could not pull {i}, but every node has it: going on"));
    }
    if blocking.is_empty() {
        return Ok(());
    }
    Err(Error::prerequisite(
        format!(
            "pinned image(s) could not be pulled into this machine's image cache; nothing was changed:\n  {}",
            blocking.join("\n  ")
        ),
        "check the network and the registry (`docker pull IMAGE` by hand says the same), or set `imageCache: false` in devenv.yaml to leave the pulls to the nodes",
    ))
}

/// Recreating deletes the cluster with every database in it: ask on a terminal, else require --yes.
fn confirm_recreate(app: &App, name: &str, reason: &str, fate: &str) -> Result<()> {
    let what = format!("--recreate deletes cluster `{name}`: {fate}");
    let Some(stdin) = &app.confirm else {
        return Err(Error::usage(
            format!("{what}; nothing was changed"),
            "run again with --yes to confirm",
        ));
    };
    app.reporter.prompt(&format!(
        "{what}.\n({reason})\nType the environment name `{name}` to go on: "
    ));
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

/// What a component asks to be told once per machine, when devenv installs it (that
/// ingress-nginx is retired upstream): not again for every environment, ephemeral ones included.
fn install_notices(ctx: &Context, p: &Plan) {
    let machine = crate::state::State::machine(&crate::state::base_dir(&ctx.app.vars));
    for c in &ctx.desired.components {
        let Some(notice) = &c.install_notice else { continue };
        let installing = p
            .step(&StepId::Component(c.name.clone()))
            .is_some_and(|s| s.change == Change::Create);
        let marker = format!("notice-{}", c.name);
        if installing && !machine.path(&marker).exists() {
            ctx.app.reporter.warn(notice);
            let _ = machine.write_private(&marker, "shown\n");
        }
    }
}

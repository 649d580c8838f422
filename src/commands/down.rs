//! `devenv down`: remove the environment. Idempotent. On kind and minikube it deletes the cluster;
//! on an existing cluster it removes only the releases devenv recorded as its own, never the cluster.

use super::{App, target};
use crate::config::Driver;
use crate::error::{Error, Result};
use crate::exec::{Status, StepResult};
use crate::state::State;
use crate::world::{ClusterState, World};
use std::time::{Duration, Instant};

pub fn run(app: &App, purge: bool, no_wait: bool) -> Result<()> {
    run_with(app, purge, no_wait, &app.cancel)
}

/// `down` with its own cancellation token (`devenv run` tears down after a signal ended the command).
pub fn run_with(app: &App, purge: bool, no_wait: bool, cancel: &crate::exec::Cancel) -> Result<()> {
    let ctx = crate::context::Context::new(app, None)?;
    let (config, state, desired, world) = (&ctx.config, &ctx.state, &ctx.desired, &ctx.world);
    // A name that has no environment (a misspelt -n) leaves nothing behind, not even its lock.
    let had_state = state.dir.exists();
    let lock = state.lock(no_wait, cancel, |m| app.reporter.info(m))?;
    // Before anything is removed: how PostgreSQL's files will be (refused if they cannot be).
    let helper = if purge {
        purge_helper(world, config, state, cancel)?
    } else {
        None
    };
    let name = &desired.name;
    let removed = match world.cluster.observe(name, cancel)? {
        ClusterState::Absent => {
            // A wrong -n is the usual reason; name the clusters that do exist.
            let others = world.cluster.list(cancel).unwrap_or_default();
            let hint = if others.is_empty() {
                String::new()
            } else {
                format!(" (clusters here: {})", others.join(", "))
            };
            app.reporter
                .info(&format!("environment `{name}` has no cluster: nothing to do{hint}"));
            false
        }
        ClusterState::Present { .. } if config.project.driver == Driver::Existing => {
            remove_installed(app, world, state, name, cancel)?
        }
        ClusterState::Present { .. } => {
            let fate = if purge {
                "with --purge nothing is kept".to_string()
            } else {
                desired.deletion_keeps(Some(&state.data_dir()))
            };
            step(app, "cluster", &format!("delete cluster {name} ({fate})"), || {
                world.cluster.delete(name, cancel)
            })?;
            if config.project.driver == Driver::Kind {
                remove_leftover_nodes(app, world, name, cancel)?;
            }
            true
        }
    };
    let _ = std::fs::remove_file(state.kubeconfig());
    // With the cluster: the host ports it held, and any sign of a create that did not finish.
    if config.project.driver != Driver::Existing {
        state.set_ports(None)?;
        state.set_creating(false)?;
    }
    // The failures `status` reports were of the cluster that is gone.
    state.update_failures(state.failures().into_keys().map(|k| (k, None)))?;
    drop(lock);
    if !had_state && !removed {
        let _ = std::fs::remove_dir_all(&state.dir);
    }
    if purge && state.dir.exists() {
        if let Some(image) = &helper {
            remove_data_as_root(app, world, state, image, cancel)?;
        }
        std::fs::remove_dir_all(&state.dir)
            .map_err(|e| Error::failed(format!("cannot remove {}: {e}", state.dir.display()), ""))?;
        app.reporter.info(&format!(
            "removed devenv's state for `{name}` ({}), with the persistent data in it",
            state.dir.display()
        ));
    } else {
        let data = state.data_dir();
        let mut kept = Vec::new();
        let pg = data.join(crate::components::postgresql::DATA_DIR);
        if pg.is_dir() {
            kept.push(format!("PostgreSQL's data in {}", pg.display()));
        }
        let shared = data.join(crate::components::shared_data::DATA_DIR);
        if shared.is_dir() {
            kept.push(format!("the shared files in {}", shared.display()));
        }
        if !kept.is_empty() {
            app.reporter.info(&format!(
                "kept {}: the next `devenv up` finds them again (`devenv down --purge` deletes them)",
                kept.join(" and ")
            ));
        }
    }
    // A directory of the user's own is never devenv's to delete, not even with --purge.
    if let Some(dir) = config.project.shared.path.as_ref().filter(|d| d.is_dir())
        && desired.shared.is_some()
    {
        app.reporter
            .info(&format!("the shared files stay in {} (your directory)", dir.display()));
    }
    let result = if removed { "removed" } else { "unchanged" };
    app.reporter
        .json(serde_json::json!({"event": "summary", "command": "down", "result": result}));
    Ok(())
}

/// Runs one reported step outside the executor (down has no plan to run concurrently).
fn step(app: &App, id: &str, label: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    app.reporter.step_started(id, label);
    let t = Instant::now();
    let r = f();
    let status = match &r {
        Ok(()) => Status::Ok,
        Err(e) => Status::Failed(e.to_string()),
    };
    let span = Some((Duration::ZERO, t.elapsed()));
    app.reporter.step_finished(&StepResult {
        id: id.into(),
        label: label.into(),
        status,
        span,
    });
    r
}

/// Node containers that still carry the cluster's label after `kind delete` (a crash or a Docker
/// hiccup mid-delete) are removed, so that `down` really leaves nothing.
fn remove_leftover_nodes(app: &App, world: &World, name: &str, cancel: &crate::exec::Cancel) -> Result<()> {
    let left: Vec<String> = world
        .engine
        .containers_labelled(crate::adapters::kind::CLUSTER_LABEL, name, cancel)?
        .into_iter()
        .map(|n| n.name)
        .collect();
    if left.is_empty() {
        return Ok(());
    }
    step(
        app,
        "leftovers",
        &format!("remove leftover node(s) {}", left.join(", ")),
        || world.engine.remove(&left, cancel),
    )
}

/// Uninstalls what devenv's record says it installed, then the record itself.
fn remove_installed(app: &App, world: &World, state: &State, name: &str, cancel: &crate::exec::Cancel) -> Result<bool> {
    state.write_private("kubeconfig", &world.cluster.kubeconfig(name, cancel)?)?;
    let t = target(world, state, name);
    let records = world.kube.records(&t, cancel)?;
    let others: Vec<&(String, crate::world::Applied)> = records.iter().filter(|(env, _)| env != name).collect();
    let Some(applied) = records.iter().find(|(env, _)| env == name).map(|(_, a)| a.clone()) else {
        app.reporter.info(&format!(
            "devenv has installed nothing in context `{}`: nothing to do",
            t.context
        ));
        return Ok(false);
    };
    let releases = world.helm.list(&t, cancel)?;
    for key in applied.entries.keys() {
        let Some(release) = key.strip_prefix("component.") else {
            continue;
        };
        // A release another environment also recorded as its own is left to that one.
        if let Some((owner, _)) = others.iter().find(|(_, a)| a.entries.contains_key(key)) {
            app.reporter.warn(&format!(
                "{release} is left in place: devenv environment `{owner}` also records it as its own"
            ));
            continue;
        }
        for r in releases.iter().filter(|r| r.name == release) {
            step(
                app,
                release,
                &format!("uninstall {release} from {}", r.namespace),
                || world.helm.uninstall(&t, &r.name, &r.namespace, cancel),
            )?;
        }
    }
    step(app, "record", "forget devenv's record in the cluster", || {
        world.kube.delete_applied(&t, name, cancel)
    })?;
    app.reporter.info(&format!(
        "the cluster behind context `{}` was left in place, as it is not devenv's",
        t.context
    ));
    Ok(true)
}

/// Whether this user can remove everything under `dir`: every directory in it must let it list
/// and unlink (PostgreSQL leaves its data directory to uid 999 with mode 0700).
fn removable_by_me(dir: &std::path::Path) -> bool {
    fn may(path: &std::path::Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a valid NUL-terminated path; access() only reads it.
        unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK | libc::X_OK) == 0 }
    }
    if !may(dir) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|e| match e.file_type() {
        Ok(t) if t.is_dir() => removable_by_me(&e.path()),
        Ok(_) => true,
        Err(_) => false,
    })
}

/// `down --purge` with files in the data directory this user cannot remove (PostgreSQL's own):
/// the image of a throwaway container that removes them as root, found on this machine before
/// anything is touched; none at all is refused with nothing removed, so the data never outlives
/// the password in credentials.json.
fn purge_helper(
    world: &World,
    config: &crate::config::Config,
    state: &State,
    cancel: &crate::exec::Cancel,
) -> Result<Option<String>> {
    let data = state.data_dir();
    if !data.is_dir() || removable_by_me(&data) {
        return Ok(None);
    }
    let v = &config.versions;
    for image in [&v.kind_node_image, &v.probe_image] {
        if world.images.local_image(image, cancel)?.is_some() {
            return Ok(Some(image.clone()));
        }
    }
    Err(Error::prerequisite(
        format!(
            "{} holds files the database's user (uid {}) made, which this user cannot remove, and neither {} nor {} is on this machine to remove them with; nothing was removed",
            data.display(),
            crate::components::postgresql::UID,
            v.kind_node_image,
            v.probe_image
        ),
        format!(
            "`docker pull {}` and run `devenv down --purge` again, or remove them yourself: `sudo rm -rf {}`",
            v.probe_image,
            data.display()
        ),
    ))
}

/// Removes everything in the data directory through a throwaway container running as root with
/// the directory mounted. On failure the state (and so the password) stays with the data.
fn remove_data_as_root(
    app: &App,
    world: &World,
    state: &State,
    image: &str,
    cancel: &crate::exec::Cancel,
) -> Result<()> {
    let data = state.data_dir();
    let inside = crate::config::kind::DATA_MOUNT;
    let mut args = vec!["-rf".to_string(), "--".to_string()];
    for e in std::fs::read_dir(&data).map_err(|e| Error::failed(format!("cannot read {}: {e}", data.display()), ""))? {
        let e = e.map_err(|e| Error::failed(format!("cannot read {}: {e}", data.display()), ""))?;
        args.push(format!("{inside}/{}", e.file_name().to_string_lossy()));
    }
    let spec = crate::world::RunSpec {
        image: image.to_string(),
        user: "0:0".into(),
        mounts: vec![(data.clone(), inside.to_string())],
        entrypoint: "rm".into(),
        args,
    };
    step(
        app,
        "data",
        &format!(
            "remove the persistent data in {} (as root, in a {image} container)",
            data.display()
        ),
        || world.engine.run(&spec, cancel),
    )
    .map_err(|e| {
        Error::failed(
            format!("{e}; devenv's state for this environment is kept, with the password of the data that is left"),
            format!(
                "remove {} yourself (`sudo rm -rf {}`), then `devenv down --purge` again",
                data.display(),
                data.display()
            ),
        )
    })
}

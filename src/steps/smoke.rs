//! The smoke tests (`devenv test`, and the last step of `up`): every check at once, each with its
//! own timeout, from where the user stands:
//! - PostgreSQL and Redis from this machine, through their mapped ports, in their own protocols;
//! - HTTP through the ingress to an echo backend in a namespace unique to the run, which must
//!   answer the run's token;
//! - in the cluster, a Job that resolves PostgreSQL and Redis by cluster DNS and connects.
//!
//! The run's namespace is removed on every exit path by the undo ledger; namespaces that earlier
//! runs left behind (a SIGKILL, a power cut) are swept first, found by label, and only when the
//! process that made them is gone.

use crate::error::{Error, Result};
use crate::exec::{Scope, StepCtx};
use crate::output::{Reporter, seconds};
use crate::plan::Desired;
use crate::state::State;
use crate::world::{Check, KubeTarget, Probe, SmokeNamespace, SmokeSpec, World};
use std::time::{Duration, Instant};

pub struct Smoke<'a> {
    pub world: &'a World,
    pub state: &'a State,
    pub desired: &'a Desired,
    pub target: &'a KubeTarget,
    pub timeout: Duration,
    /// The shared volume waits for `up --recreate`: `up` leaves its check out.
    pub skip_shared: bool,
}

impl<'a> Smoke<'a> {
    pub fn of(ctx: &'a crate::context::Context, timeout: Duration, skip_shared: bool) -> Smoke<'a> {
        Smoke {
            world: &ctx.world,
            state: &ctx.state,
            desired: &ctx.desired,
            target: &ctx.target,
            timeout,
            skip_shared,
        }
    }
}

/// The smoke run, and once it passed, its digest in devenv's record: a later `up` with nothing
/// changed skips it.
pub fn run_and_record(s: &Smoke, ctx: &StepCtx, reporter: &Reporter, junit: Option<&std::path::Path>) -> Result<()> {
    let key = crate::plan::RecordKey::Smoke.key();
    if let Err(e) = run(s, ctx, reporter, junit) {
        // A failed run is not a pass: the next `up` runs the checks again.
        let _ = s
            .world
            .kube
            .set_applied(s.target, &s.desired.name, &key, None, &crate::exec::Cancel::new());
        return Err(e);
    }
    s.world.kube.set_applied(
        s.target,
        &s.desired.name,
        &key,
        Some(&s.desired.smoke_digest),
        ctx.cancel,
    )
}

/// One row of the report.
pub struct Outcome {
    pub check: String,
    pub took: Duration,
    pub result: Result<()>,
}

/// A leftover namespace is swept after this long even when its owner cannot be checked.
const STALE_AFTER_SECS: u64 = 2 * 3600;

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".into()
    }
}

/// `<hostname>/<pid>`: who owns a smoke namespace.
pub fn owner() -> String {
    format!("{}/{}", hostname(), std::process::id())
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Why `ns` is a leftover to remove, or None when its run may still be going.
pub fn leftover(ns: &SmokeNamespace, now: u64, here: &str) -> Option<String> {
    let (host, pid) = ns.owner.rsplit_once('/').unwrap_or(("", ""));
    let pid: i32 = pid.parse().unwrap_or(0);
    if host == here && pid > 0 && !alive(pid) {
        return Some(format!("its devenv process {pid} is gone"));
    }
    let age = now.saturating_sub(ns.created);
    (ns.created > 0 && age > STALE_AFTER_SECS).then(|| format!("it is {}h old", age / 3600))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Removes the smoke namespaces of earlier runs that can no longer clean up after themselves.
fn sweep(s: &Smoke, ctx: &StepCtx, reporter: &Reporter) {
    let found = match s.world.kube.smoke_namespaces(s.target, &s.desired.name, ctx.cancel) {
        Ok(f) => f,
        Err(e) => {
            reporter.warn(&format!("could not look for leftover smoke namespaces: {e}"));
            return;
        }
    };
    let here = hostname();
    for ns in found {
        if let Some(why) = leftover(&ns, now_secs(), &here) {
            match s.world.kube.delete_namespace(s.target, &ns.name, ctx.cancel) {
                Ok(()) => reporter.info(&format!(
                    "   removed smoke namespace {} left by an earlier run ({why})",
                    ns.name
                )),
                Err(e) => reporter.warn(&format!("could not remove leftover smoke namespace {}: {e}", ns.name)),
            }
        }
    }
}

/// Loads the smoke images into the nodes when this machine has them (kind); pulled otherwise.
fn load_images(s: &Smoke, ctx: &StepCtx, reporter: &Reporter) {
    if s.desired.driver != crate::config::Driver::Kind {
        return;
    }
    let present: Vec<String> = [&s.desired.echo_image, &s.desired.probe_image]
        .into_iter()
        .filter(|i| matches!(s.world.images.local_image(i, ctx.cancel), Ok(Some(_))))
        .cloned()
        .collect();
    if present.is_empty() {
        return;
    }
    if let Err(e) = s
        .world
        .cluster
        .load_images(&s.desired.name, &present, &|_, _| {}, ctx.cancel)
    {
        reporter.warn(&format!(
            "could not load the smoke images from this machine (the nodes will pull them): {e}"
        ));
    }
}

fn timed(check: String, f: impl FnOnce() -> Result<()>) -> Outcome {
    let t = Instant::now();
    let result = f();
    Outcome {
        check,
        took: t.elapsed(),
        result,
    }
}

pub fn run(s: &Smoke, ctx: &StepCtx, reporter: &Reporter, junit: Option<&std::path::Path>) -> Result<()> {
    let started = Instant::now();
    let credentials = s.state.credentials()?;
    let token = crate::probe::token();
    let http = s.desired.probes.iter().find(|p| matches!(p.check, Check::Http { .. }));
    let needs_namespace = http.is_some() || !s.desired.in_cluster.is_empty();
    let spec = SmokeSpec {
        env: s.desired.name.clone(),
        namespace: format!("devenv-smoke-{token}"),
        token: token.clone(),
        host: match http.map(|p| &p.check) {
            Some(Check::Http { host_header }) => format!("{token}.{host_header}"),
            _ => String::new(),
        },
        echo_image: s.desired.echo_image.clone(),
        probe_image: s.desired.probe_image.clone(),
        ingress_class: s.desired.ingress_class.clone(),
        owner: owner(),
        created: now_secs(),
    };
    let mut namespace: std::result::Result<(), String> = Err("not needed".into());
    if needs_namespace {
        sweep(s, ctx, reporter);
        load_images(s, ctx, reporter);
        // Recorded before it exists: an interrupt during the create still removes it.
        let (kube, t, ns) = (s.world.kube.clone(), s.target.clone(), spec.namespace.clone());
        ctx.ledger
            .record(format!("smoke namespace {ns}"), Scope::Always, move || {
                kube.delete_namespace(&t, &ns, &crate::exec::Cancel::new())
            });
        namespace = s
            .world
            .kube
            .create_smoke_namespace(s.target, &spec, ctx.cancel)
            .map_err(|e| {
                if matches!(e, Error::Interrupted(_)) {
                    return "interrupted".to_string();
                }
                format!("the run's namespace {} could not be created: {e}", spec.namespace)
            });
        if ctx.cancel.is_cancelled() {
            return Err(ctx.cancel.error());
        }
    }
    let (spec, namespace, credentials) = (&spec, &namespace, &credentials);
    let outcomes: Vec<Outcome> = std::thread::scope(|sc| {
        let mut handles = Vec::new();
        for p in &s.desired.probes {
            handles.push(sc.spawn(move || {
                let label = format!("{} {}:{}", p.name, p.host, p.port);
                timed(label, || {
                    let (probe, password) = match &p.check {
                        Check::Http { .. } => {
                            namespace.clone().map_err(|m| Error::failed(m, ""))?;
                            s.world.kube.smoke_echo(s.target, spec, s.timeout, ctx.cancel)?;
                            let probe = Probe {
                                check: Check::Http {
                                    host_header: spec.host.clone(),
                                },
                                ..p.clone()
                            };
                            (probe, None)
                        }
                        Check::Postgres { .. } => (
                            p.clone(),
                            Some(credentials.secret(crate::components::Secret::PostgresPassword)),
                        ),
                        Check::Redis | Check::Prometheus { .. } | Check::Grafana { .. } => (p.clone(), None),
                    };
                    s.world
                        .prober
                        .probe(&probe, password, &spec.token, s.timeout, ctx.cancel)
                })
            }));
        }
        if s.desired.metrics_check {
            handles.push(sc.spawn(move || {
                timed("metrics api".into(), || {
                    s.world.kube.node_metrics(s.target, s.timeout, ctx.cancel)
                })
            }));
        }
        if let Some(sh) = s.desired.shared.as_ref().filter(|_| !s.skip_shared) {
            handles.push(sc.spawn(move || {
                timed(
                    format!("shared volume {}/{}", sh.volume.namespace, sh.volume.claim),
                    || {
                        s.world
                            .kube
                            .smoke_shared(s.target, spec, &sh.volume, s.timeout, ctx.cancel)
                    },
                )
            }));
        }
        if !s.desired.in_cluster.is_empty() {
            handles.push(sc.spawn(move || {
                timed("in-cluster dns".into(), || {
                    namespace.clone().map_err(|m| Error::failed(m, ""))?;
                    s.world
                        .kube
                        .smoke_job(s.target, spec, &s.desired.in_cluster, s.timeout, ctx.cancel)
                })
            }));
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Outcome {
                    check: "probe".into(),
                    took: Duration::ZERO,
                    result: Err(Error::failed("a smoke check panicked", "")),
                })
            })
            .collect()
    });
    report(&outcomes, reporter, junit, started.elapsed())
}

fn report(outcomes: &[Outcome], reporter: &Reporter, junit: Option<&std::path::Path>, wall: Duration) -> Result<()> {
    let mut failures = Vec::new();
    let w = outcomes
        .iter()
        .map(|o| o.check.chars().count())
        .max()
        .unwrap_or(0)
        .max(28);
    let mut table = vec![format!("   {:<w$} result  time    reason", "check")];
    for o in outcomes {
        if let Err(Error::Interrupted(sig)) = &o.result {
            return Err(Error::Interrupted(*sig));
        }
        let reason = o.result.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
        let first_line = reason.lines().next().unwrap_or("");
        table.push(format!(
            "   {:<w$} {:<7} {:<7} {first_line}",
            o.check,
            if o.result.is_ok() { "ok" } else { "FAILED" },
            seconds(o.took)
        ));
        if o.result.is_err() {
            failures.push(format!("{}: {reason}", o.check));
        }
        reporter.json(serde_json::json!({"event": "check", "check": o.check, "result": if o.result.is_ok() {"ok"} else {"failed"}, "elapsed_ms": o.took.as_millis() as u64, "reason": o.result.as_ref().err().map(|e| e.to_string())}));
    }
    // In json mode each row went out as its `check` event.
    for line in &table {
        reporter.human(line);
    }
    if let Some(path) = junit {
        write_junit(path, outcomes, wall)?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(
            format!("smoke tests failed:\n  {}", failures.join("\n  ")),
            "each reason is in the table above; `devenv status` shows whether a component is not ready, `devenv test` runs the checks again",
        ))
    }
}

/// Text for an XML attribute or element: escape sequences and control characters gone (a
/// container's log carries them, and XML 1.0 forbids most), then the five specials escaped.
fn xml(text: &str) -> String {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    };
    let clean: String = crate::output::sanitize(text).chars().filter(|c| allowed(*c)).collect();
    clean
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The JUnit report (for CI systems that show test results): each check a testcase with its own time, the suite's time the wall time of
/// the whole run (the checks run at the same time, so their sum would overstate it).
pub fn write_junit(path: &std::path::Path, outcomes: &[Outcome], wall: Duration) -> Result<()> {
    let failures = outcomes.iter().filter(|o| o.result.is_err()).count();
    let total = wall.as_secs_f64();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"devenv smoke\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n",
        outcomes.len()
    );
    for o in outcomes {
        x.push_str(&format!(
            "  <testcase classname=\"devenv.smoke\" name=\"{}\" time=\"{:.3}\"",
            xml(&o.check),
            o.took.as_secs_f64()
        ));
        match &o.result {
            Ok(()) => x.push_str("/>\n"),
            Err(e) => x.push_str(&format!(
                ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n",
                xml(e.to_string().lines().next().unwrap_or("")),
                xml(&e.to_string())
            )),
        }
    }
    x.push_str("</testsuite>\n");
    std::fs::write(path, x).map_err(|e| {
        Error::failed(
            format!("cannot write the JUnit report {}: {e}", path.display()),
            "check the path given to --junit",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_a_leftover_only_when_its_process_is_gone_or_it_is_old() {
        let here = hostname();
        let me = SmokeNamespace {
            name: "devenv-smoke-a".into(),
            owner: owner(),
            created: now_secs(),
        };
        assert_eq!(leftover(&me, now_secs(), &here), None, "this process is alive");
        // A pid that cannot exist (above pid_max) is gone.
        let gone = SmokeNamespace {
            owner: format!("{here}/2147483646"),
            ..me.clone()
        };
        assert!(
            leftover(&gone, now_secs(), &here)
                .unwrap()
                .contains("2147483646 is gone")
        );
        // Another machine's run is left alone unless it is old.
        let elsewhere = SmokeNamespace {
            owner: "ci-runner-7/12".into(),
            ..me.clone()
        };
        assert_eq!(leftover(&elsewhere, now_secs(), &here), None);
        assert!(
            leftover(&elsewhere, now_secs() + 3 * 3600, &here)
                .unwrap()
                .contains("3h old")
        );
    }
}

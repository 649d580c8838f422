//! Executor behaviour with plain in-memory steps (no external system involved).

use super::*;
use crate::error::Signal;
use std::sync::{Arc, Mutex};

fn sleeper<'a>(id: &str, deps: &[&str], ms: u64, log: Arc<Mutex<Vec<String>>>) -> Task<'a> {
    let id2 = id.to_string();
    Task::new(
        id,
        id,
        deps.iter().map(|s| s.to_string()).collect(),
        move |ctx: &StepCtx| {
            let l = log.clone();
            let name = id2.clone();
            ctx.ledger.record(format!("undo {id2}"), Scope::OnFailure, move || {
                l.lock().unwrap().push(format!("undo {name}"));
                Ok(())
            });
            if !ctx.cancel.sleep(Duration::from_millis(ms)) {
                return Err(ctx.cancel.error());
            }
            log.lock().unwrap().push(format!("done {id2}"));
            Ok(())
        },
    )
}

fn overlaps(a: &StepResult, b: &StepResult) -> bool {
    let (a0, a1) = a.span.unwrap();
    let (b0, b1) = b.span.unwrap();
    a0 < b1 && b0 < a1
}

#[test]
fn independent_steps_overlap_and_dependents_wait() {
    let log = Arc::new(Mutex::new(vec![]));
    let tasks = vec![
        sleeper("cluster", &[], 30, log.clone()),
        sleeper("postgresql", &["cluster"], 150, log.clone()),
        sleeper("redis", &["cluster"], 150, log.clone()),
        sleeper("smoke", &["postgresql", "redis"], 10, log.clone()),
    ];
    let out = execute(
        tasks,
        OnFailure::CancelSiblings,
        &Cancel::new(),
        &Ledger::new(),
        &|_| {},
    );
    assert!(out.error.is_none());
    let r: BTreeMap<_, _> = out.results.iter().map(|r| (r.id.as_str(), r)).collect();
    assert!(
        overlaps(r["postgresql"], r["redis"]),
        "postgresql and redis must run at the same time"
    );
    assert!(r["postgresql"].span.unwrap().0 >= r["cluster"].span.unwrap().1);
    assert!(r["smoke"].span.unwrap().0 >= r["redis"].span.unwrap().1);
    // success keeps what the run made
    assert!(out.undone.is_empty());
}

#[test]
fn a_failure_cancels_siblings_skips_dependents_and_rolls_back_in_reverse() {
    let log = Arc::new(Mutex::new(vec![]));
    let failing = Task::new("redis", "redis", vec!["cluster".into()], |ctx: &StepCtx| {
        ctx.cancel.sleep(Duration::from_millis(20));
        Err(Error::failed("redis install failed", "look at the logs"))
    });
    let tasks = vec![
        sleeper("cluster", &[], 10, log.clone()),
        sleeper("postgresql", &["cluster"], 10_000, log.clone()),
        failing,
        sleeper("smoke", &["postgresql", "redis"], 10, log.clone()),
    ];
    let started = Instant::now();
    let out = execute(
        tasks,
        OnFailure::CancelSiblings,
        &Cancel::new(),
        &Ledger::new(),
        &|_| {},
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the long sibling was not cancelled"
    );
    assert_eq!(out.error.as_ref().unwrap().exit_code(), 1);
    let status: BTreeMap<_, _> = out.results.iter().map(|r| (r.id.as_str(), r.status.clone())).collect();
    assert_eq!(status["postgresql"], Status::Cancelled);
    assert!(matches!(status["redis"], Status::Failed(_)));
    assert_eq!(status["smoke"], Status::Skipped);
    let undone: Vec<String> = out.undone.iter().map(|u| u.description.clone()).collect();
    assert_eq!(undone, vec!["undo postgresql", "undo cluster"]);
}

#[test]
fn a_signal_stops_everything_rolls_back_and_maps_to_130() {
    let log = Arc::new(Mutex::new(vec![]));
    let cancel = Cancel::new();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(80));
        c.cancel(Reason::Signal(Signal::Int));
    });
    let tasks = vec![
        sleeper("cluster", &[], 20, log.clone()),
        sleeper("postgresql", &["cluster"], 10_000, log.clone()),
        sleeper("smoke", &["postgresql"], 10, log.clone()),
    ];
    let out = execute(tasks, OnFailure::CancelSiblings, &cancel, &Ledger::new(), &|_| {});
    let err = out.error.unwrap();
    assert_eq!(err.exit_code(), 130);
    assert_eq!(out.undone.len(), 2);
    assert_eq!(
        *log.lock().unwrap(),
        vec!["done cluster", "undo postgresql", "undo cluster"]
    );
}

#[test]
fn a_panicking_step_is_a_failure_not_a_crash() {
    let tasks = vec![Task::new("boom", "boom", vec![], |_: &StepCtx| -> Result<()> {
        panic!("kaput")
    })];
    let out = execute(
        tasks,
        OnFailure::CancelSiblings,
        &Cancel::new(),
        &Ledger::new(),
        &|_| {},
    );
    assert!(out.error.unwrap().to_string().contains("kaput"));
}

#[test]
fn finishing_siblings_run_to_their_end_but_nothing_new_starts_after_a_failure() {
    let log = Arc::new(Mutex::new(vec![]));
    let failing = Task::new("redis", "redis", vec!["cluster".into()], |ctx: &StepCtx| {
        ctx.cancel.sleep(Duration::from_millis(20));
        Err(Error::failed("redis install failed", "look at the logs"))
    });
    let tasks = vec![
        sleeper("cluster", &[], 10, log.clone()),
        sleeper("postgresql", &["cluster"], 200, log.clone()),
        failing,
        sleeper("monitoring", &["postgresql"], 10, log.clone()),
    ];
    let out = execute(tasks, OnFailure::FinishRunning, &Cancel::new(), &Ledger::new(), &|_| {});
    let status: BTreeMap<_, _> = out.results.iter().map(|r| (r.id.as_str(), r.status.clone())).collect();
    assert_eq!(status["postgresql"], Status::Ok, "the running sibling finished");
    assert!(matches!(status["redis"], Status::Failed(_)));
    assert_eq!(
        status["monitoring"],
        Status::Skipped,
        "nothing new starts after a failure"
    );
    assert_eq!(out.error.unwrap().to_string(), "redis install failed");
    assert!(log.lock().unwrap().contains(&"done postgresql".to_string()));
}

#[test]
fn a_signal_still_cancels_siblings_that_would_have_finished() {
    let log = Arc::new(Mutex::new(vec![]));
    let cancel = Cancel::new();
    let c = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(80));
        c.cancel(Reason::Signal(Signal::Int));
    });
    let failing = Task::new("redis", "redis", vec![], |_: &StepCtx| Err(Error::failed("boom", "")));
    let tasks = vec![sleeper("postgresql", &[], 10_000, log.clone()), failing];
    let started = Instant::now();
    let out = execute(tasks, OnFailure::FinishRunning, &cancel, &Ledger::new(), &|_| {});
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.error.unwrap().exit_code(), 130);
    let status: BTreeMap<_, _> = out.results.iter().map(|r| (r.id.as_str(), r.status.clone())).collect();
    assert_eq!(status["postgresql"], Status::Cancelled);
}

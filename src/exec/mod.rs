//! The executor: runs a set of steps as a DAG. Independent steps run at the same time; after the
//! first failure no new step starts and the running ones either finish or are cancelled (the
//! caller's [`OnFailure`]); a signal cancels everything; and then the one exit path unwinds the
//! undo ledger. Concurrency lives here and nowhere else.

pub mod cancel;
pub mod ledger;

pub use cancel::{Cancel, Reason};
pub use ledger::{Ledger, Scope, Undone};

use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a running step can reach: the run's cancellation token and its undo ledger.
pub struct StepCtx<'a> {
    pub cancel: &'a Cancel,
    pub ledger: &'a Ledger,
}

type Body<'a> = Box<dyn FnOnce(&StepCtx) -> Result<()> + Send + 'a>;

pub struct Task<'a> {
    pub id: String,
    pub label: String,
    pub deps: Vec<String>,
    pub body: Body<'a>,
}

impl<'a> Task<'a> {
    pub fn new(
        id: impl Into<String>,
        label: impl Into<String>,
        deps: Vec<String>,
        body: impl FnOnce(&StepCtx) -> Result<()> + Send + 'a,
    ) -> Self {
        Task {
            id: id.into(),
            label: label.into(),
            deps,
            body: Box::new(body),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed(String),
    /// Stopped part-way by a sibling's failure or a signal.
    Cancelled,
    /// Never started: a dependency did not succeed, or the run was stopping.
    Skipped,
}

#[derive(Debug, Clone)]
pub struct StepResult {
    pub id: String,
    pub label: String,
    pub status: Status,
    /// Start and end, relative to the start of the run (None for skipped steps).
    pub span: Option<(Duration, Duration)>,
}

pub enum Event<'e> {
    Started { id: &'e str, label: &'e str },
    Finished { result: &'e StepResult },
    Undone(&'e Undone),
}

/// What a failure does to the steps already running beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Cancel them (their undo entries then roll back what they half did).
    CancelSiblings,
    /// Let them finish, so that a helm install half-way through is not left `failed` by another
    /// component's error; a signal still cancels them.
    FinishRunning,
}

pub struct Outcome {
    pub results: Vec<StepResult>,
    pub error: Option<Error>,
    pub undone: Vec<Undone>,
}

/// Runs `tasks` to completion or cancellation, then unwinds `ledger`.
pub fn execute(
    tasks: Vec<Task<'_>>,
    policy: OnFailure,
    cancel: &Cancel,
    ledger: &Ledger,
    on_event: &(dyn Fn(Event) + Sync),
) -> Outcome {
    let t0 = Instant::now();
    let ids: BTreeSet<String> = tasks.iter().map(|t| t.id.clone()).collect();
    let order: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    let mut pending: BTreeMap<String, Task> = tasks.into_iter().map(|t| (t.id.clone(), t)).collect();
    let mut results: BTreeMap<String, StepResult> = BTreeMap::new();
    let mut first_error: Option<Error> = None;

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(String, String, Result<()>, Duration, Duration)>();
        let mut running = 0usize;
        loop {
            // Launch every task whose dependencies all succeeded, unless the run is stopping.
            if !cancel.is_cancelled() && first_error.is_none() {
                let ready: Vec<String> = pending
                    .values()
                    .filter(|t| {
                        t.deps
                            .iter()
                            .all(|d| !ids.contains(d) || results.get(d).is_some_and(|r| r.status == Status::Ok))
                    })
                    .map(|t| t.id.clone())
                    .collect();
                for id in ready {
                    let task = pending.remove(&id).expect("ready task is pending");
                    on_event(Event::Started {
                        id: &task.id,
                        label: &task.label,
                    });
                    running += 1;
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let start = t0.elapsed();
                        let ctx = StepCtx { cancel, ledger };
                        let body = task.body;
                        let r =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&ctx))).unwrap_or_else(|p| {
                                let msg = p
                                    .downcast_ref::<&str>()
                                    .map(|s| s.to_string())
                                    .or_else(|| p.downcast_ref::<String>().cloned())
                                    .unwrap_or_default();
                                Err(Error::failed(
                                    format!("step `{}` panicked: {msg}", task.id),
                                    "this is a bug in devenv; please report it with the output above",
                                ))
                            });
                        let _ = tx.send((task.id, task.label, r, start, t0.elapsed()));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let (id, label, r, start, end) = rx.recv().expect("a running step always reports");
            running -= 1;
            let status = match r {
                Ok(()) => Status::Ok,
                Err(e) => {
                    if cancel.is_cancelled() && (matches!(e, Error::Interrupted(_)) || first_error.is_some()) {
                        Status::Cancelled
                    } else {
                        let s = Status::Failed(e.to_string());
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                        if policy == OnFailure::CancelSiblings {
                            cancel.cancel(Reason::Failure);
                        }
                        s
                    }
                }
            };
            let result = StepResult {
                id: id.clone(),
                label,
                status,
                span: Some((start, end)),
            };
            on_event(Event::Finished { result: &result });
            results.insert(id, result);
        }
    });

    for id in &order {
        if let Some(task) = pending.remove(id) {
            let result = StepResult {
                id: id.clone(),
                label: task.label,
                status: Status::Skipped,
                span: None,
            };
            on_event(Event::Finished { result: &result });
            results.insert(id.clone(), result);
        }
    }
    let error = match cancel.reason() {
        Some(Reason::Signal(s)) => Some(Error::Interrupted(s)),
        _ => first_error,
    };
    let undone = ledger.unwind(error.is_some(), |u| on_event(Event::Undone(u)));
    let mut ordered = Vec::new();
    for id in order {
        if let Some(r) = results.remove(&id) {
            ordered.push(r);
        }
    }
    Outcome {
        results: ordered,
        error,
        undone,
    }
}

#[cfg(test)]
mod tests;

//! The undo ledger: every step that makes something the run owns records how to undo it, and the
//! run's one exit path undoes what is left, newest first. No step cleans up after itself ad hoc.

use std::sync::Mutex;

/// When an entry is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Temporary things (smoke-test namespaces, rows, keys): undone on every exit path.
    Always,
    /// Things this run created for the environment: undone only if the run fails or is interrupted.
    OnFailure,
}

type Undo = Box<dyn FnOnce() -> crate::error::Result<()> + Send>;

struct Entry {
    id: u64,
    description: String,
    scope: Scope,
    /// Taken out while the undo runs; the entry stays listed (for `pending`) until it is done.
    undo: Option<Undo>,
}

/// What happened to one entry during rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undone {
    pub description: String,
    pub scope: Scope,
    /// Undone at the end of a run that failed or was interrupted.
    pub after_failure: bool,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct Ledger {
    entries: Mutex<(u64, Vec<Entry>)>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records how to undo something; returns a handle for `forget`.
    pub fn record(
        &self,
        description: impl Into<String>,
        scope: Scope,
        undo: impl FnOnce() -> crate::error::Result<()> + Send + 'static,
    ) -> u64 {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let id = g.0;
        g.1.push(Entry {
            id,
            description: description.into(),
            scope,
            undo: Some(Box::new(undo)),
        });
        id
    }

    /// Drops an entry without running it (its owner already undid it, or made it permanent).
    pub fn forget(&self, id: u64) {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        g.1.retain(|e| e.id != id);
    }

    /// Descriptions of what is still recorded, oldest first.
    pub fn pending(&self) -> Vec<String> {
        let g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        g.1.iter().map(|e| e.description.clone()).collect()
    }

    /// Undoes, newest first, every `Always` entry and, if the run failed, every `OnFailure` one.
    /// An undo that fails is reported and the rest still run; nothing panics.
    pub fn unwind(&self, failed: bool, mut on_each: impl FnMut(&Undone)) -> Vec<Undone> {
        let mut done = Vec::new();
        loop {
            let next = {
                let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                g.1.iter_mut()
                    .rev()
                    .find(|e| e.undo.is_some() && (failed || e.scope == Scope::Always))
                    .map(|e| (e.id, e.description.clone(), e.scope, e.undo.take().expect("checked")))
            };
            let Some((id, description, scope, undo)) = next else {
                break;
            };
            let error = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(undo)) {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(err.to_string()),
                Err(_) => Some("the undo action panicked".to_string()),
            };
            self.forget(id);
            let u = Undone {
                description,
                scope,
                after_failure: failed,
                error,
            };
            on_each(&u);
            done.push(u);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn unwinds_newest_first_and_keeps_permanent_work_on_success() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let ledger = Ledger::new();
        for (name, scope) in [
            ("cluster", Scope::OnFailure),
            ("namespace", Scope::Always),
            ("row", Scope::Always),
        ] {
            let log = log.clone();
            ledger.record(name, scope, move || {
                log.lock().unwrap().push(name);
                Ok(())
            });
        }
        ledger.unwind(false, |_| {});
        assert_eq!(*log.lock().unwrap(), vec!["row", "namespace"]);
        assert_eq!(ledger.pending(), vec!["cluster".to_string()]);
        ledger.unwind(true, |_| {});
        assert_eq!(*log.lock().unwrap(), vec!["row", "namespace", "cluster"]);
    }

    #[test]
    fn a_failing_undo_does_not_stop_the_others() {
        let ledger = Ledger::new();
        let ran = Arc::new(Mutex::new(false));
        let r = ran.clone();
        ledger.record("first", Scope::Always, move || {
            *r.lock().unwrap() = true;
            Ok(())
        });
        ledger.record("second", Scope::Always, || Err(crate::error::Error::failed("boom", "")));
        let done = ledger.unwind(true, |_| {});
        assert_eq!(done[0].error.as_deref(), Some("boom"));
        assert!(*ran.lock().unwrap());
    }
}

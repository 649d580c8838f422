//! A cancellation token shared by every step of a run: a failure or a signal trips it, and every
//! wait in devenv (subprocesses, simulated latency, lock polling) wakes up and stops.

use crate::error::Signal;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A sibling step failed.
    Failure,
    /// The user or the system asked devenv to stop.
    Signal(Signal),
}

#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<(Mutex<Option<Reason>>, Condvar)>,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Trips the token. The first reason wins, except that a signal overrides a failure
    /// (the exit code must say the run was interrupted).
    pub fn cancel(&self, reason: Reason) {
        let (m, cv) = &*self.inner;
        let mut r = m.lock().unwrap_or_else(|e| e.into_inner());
        match (*r, reason) {
            (None, _) | (Some(Reason::Failure), Reason::Signal(_)) => *r = Some(reason),
            _ => {}
        }
        cv.notify_all();
    }

    pub fn reason(&self) -> Option<Reason> {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_cancelled(&self) -> bool {
        self.reason().is_some()
    }

    /// Sleeps for `d` unless cancelled first. Returns false when cancelled.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let (m, cv) = &*self.inner;
        let mut r = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if r.is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            r = cv.wait_timeout(r, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Runs `work` (on an async runtime) until it ends or this token trips, checked every 50 ms;
    /// a tripped token ends it with [`Cancel::error`].
    pub async fn race<T>(
        &self,
        work: impl std::future::Future<Output = crate::error::Result<T>>,
    ) -> crate::error::Result<T> {
        use futures_util::future::{Either, select};
        let watch = async {
            while !self.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        match select(std::pin::pin!(work), std::pin::pin!(watch)).await {
            Either::Left((r, _)) => r,
            Either::Right(_) => Err(self.error()),
        }
    }

    /// The error a step returns when it stops because of this token.
    pub fn error(&self) -> crate::error::Error {
        match self.reason() {
            Some(Reason::Signal(s)) => crate::error::Error::Interrupted(s),
            _ => crate::error::Error::failed("cancelled because another step failed", ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_wakes_a_sleeper_and_wins_over_a_failure() {
        let c = Cancel::new();
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        c.cancel(Reason::Failure);
        assert!(!t.join().unwrap());
        c.cancel(Reason::Signal(Signal::Int));
        assert_eq!(c.reason(), Some(Reason::Signal(Signal::Int)));
        c.cancel(Reason::Failure);
        assert_eq!(c.reason(), Some(Reason::Signal(Signal::Int)));
    }
}

//! SIGINT and SIGTERM: the first cancels the run (which then unwinds its ledger and exits
//! 130/143); a second one forces exit at once, after saying what was left behind.

use crate::error::Signal;
use crate::exec::{Cancel, Ledger, Reason};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::Write;
use std::sync::Arc;

/// Installs the handlers for the life of the process.
pub fn install(cancel: Cancel, ledger: Arc<Ledger>) {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        let mut seen = 0;
        for sig in signals.forever() {
            let s = if sig == SIGTERM { Signal::Term } else { Signal::Int };
            seen += 1;
            if seen == 1 {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n{} received: stopping and cleaning up (press Ctrl-C again to exit at once)",
                    s.name()
                );
                cancel.cancel(Reason::Signal(s));
                continue;
            }
            let left = ledger.pending();
            let mut err = std::io::stderr();
            let _ = writeln!(err, "error: interrupted twice; exiting without cleaning up");
            if left.is_empty() {
                let _ = writeln!(err, "nothing was left behind");
            } else {
                let _ = writeln!(err, "left behind:");
                for l in &left {
                    let _ = writeln!(err, "  - {l}");
                }
                let _ = writeln!(err, "help: the next `devenv up` or `devenv down` cleans these up");
            }
            std::process::exit(i32::from(s.exit_code()));
        }
    });
}

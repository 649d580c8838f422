//! SIGINT and SIGTERM: the first cancels the run (which then unwinds its ledger and exits
//! 130/143); a second one forces exit at once, after saying what was left behind.

use crate::error::Signal;
use crate::exec::{Cancel, Ledger, Reason};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::sync::Arc;

/// Installs the handlers for the life of the process. What they say goes through the reporter:
/// on a terminal above the live step lines, which would otherwise draw over it.
pub fn install(cancel: Cancel, ledger: Arc<Ledger>, reporter: Arc<crate::output::Reporter>) {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        let mut seen = 0;
        for sig in signals.forever() {
            let s = if sig == SIGTERM { Signal::Term } else { Signal::Int };
            seen += 1;
            if seen == 1 {
                reporter.notice(&format!(
                    "{} received: stopping and cleaning up (press Ctrl-C again to exit at once)",
                    s.name()
                ));
                cancel.cancel(Reason::Signal(s));
                continue;
            }
            let left = ledger.pending();
            let mut text = String::from("error: interrupted twice; exiting without cleaning up\n");
            if left.is_empty() {
                text.push_str("nothing was left behind");
            } else {
                text.push_str("left behind:\n");
                for l in &left {
                    text.push_str(&format!("  - {l}\n"));
                }
                text.push_str("help: the next `devenv up` or `devenv down` cleans these up");
            }
            reporter.notice(&text);
            std::process::exit(i32::from(s.exit_code()));
        }
    });
}

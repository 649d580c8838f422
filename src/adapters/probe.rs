//! Smoke probes from the host, in each service's protocol (src/probe/), retried until the timeout:
//! a NodePort answers a moment after its pods are ready.

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::probe::{http, postgres, redis};
use crate::world::{Check, Probe, Prober};
use std::time::{Duration, Instant};

pub struct ServiceProber;

fn once(p: &Probe, password: Option<&str>, token: &str, timeout: Duration) -> std::result::Result<(), String> {
    let t = timeout.min(Duration::from_secs(5));
    match &p.check {
        Check::Http { host_header } => http::check(
            &p.host,
            p.port,
            host_header,
            "/",
            // Only the run's own echo backend answers 200 with the run's token.
            &http::Expect {
                status: Some(200),
                body_contains: Some(token),
            },
            t,
        ),
        Check::Postgres { user, database } => {
            let login = postgres::Login {
                user,
                password: password.unwrap_or(""),
                database,
            };
            postgres::check(&p.host, p.port, &login, token, t)
        }
        Check::Redis => redis::check(&p.host, p.port, password, token, t),
        Check::Prometheus { host_header } => http::prometheus(&p.host, p.port, host_header, t),
        Check::Grafana { host_header } => http::grafana(&p.host, p.port, host_header, t),
    }
}

impl Prober for ServiceProber {
    fn probe(&self, p: &Probe, password: Option<&str>, token: &str, timeout: Duration, cancel: &Cancel) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match once(p, password, token, timeout) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(Error::failed(
                    format!("{}: {last} (still failing after {}s)", p.name, timeout.as_secs()),
                    "`devenv status` shows whether the component is ready; `devenv doctor` checks that the host port is not taken by another program",
                ));
            }
            if !cancel.sleep(Duration::from_millis(500)) {
                return Err(cancel.error());
            }
        }
    }
}

//! Smoke probes from the host: a TCP connection to each endpoint's mapped host port, retried until
//! the timeout (a NodePort answers a moment after its pods are ready).

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::world::{Probe, Prober};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub struct TcpProber;

impl Prober for TcpProber {
    fn probe(&self, p: &Probe, timeout: Duration, cancel: &Cancel) -> Result<()> {
        let endpoint = format!("{}:{}", p.host, p.port);
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let addrs: Vec<_> = endpoint.to_socket_addrs().map(|a| a.collect()).unwrap_or_default();
            for a in &addrs {
                match TcpStream::connect_timeout(a, Duration::from_secs(2)) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::failed(
                    format!(
                        "{}: nothing accepts connections on {endpoint} after {}s ({last})",
                        p.name,
                        timeout.as_secs()
                    ),
                    "`devenv status` shows whether the component is ready; `devenv doctor` checks that the host port is not taken by another program",
                ));
            }
            if !cancel.sleep(Duration::from_millis(250)) {
                return Err(cancel.error());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_to_a_listening_port_and_names_a_closed_one() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Probe {
            name: "redis".into(),
            host: "127.0.0.1".into(),
            port,
        };
        TcpProber.probe(&p, Duration::from_secs(2), &Cancel::new()).unwrap();
        drop(l);
        let err = TcpProber
            .probe(&p, Duration::from_millis(300), &Cancel::new())
            .unwrap_err();
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}

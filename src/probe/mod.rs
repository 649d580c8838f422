//! Smoke probes that speak each service's own protocol from the host: PostgreSQL (write, read
//! back and delete a row), Redis (PING, SET with a TTL, GET, DEL) and HTTP (a request with a Host
//! header whose answer must contain an expected text). Every failure names the endpoint.

pub mod http;
pub mod postgres;
pub mod redis;
pub mod scram;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A token unique to one run, for the row, the key and the HTTP check.
pub fn token() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{t}-{}-{:p}", std::process::id(), &t);
    crate::plan::desired::digest(&[&seed])
}

/// A connection with read and write timeouts; the error names the endpoint.
pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let endpoint = format!("{host}:{port}");
    let addrs: Vec<_> = endpoint
        .to_socket_addrs()
        .map_err(|e| format!("{endpoint}: {e}"))?
        .collect();
    let mut last = format!("{endpoint}: no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(timeout));
                let _ = s.set_write_timeout(Some(timeout));
                return Ok(s);
            }
            Err(e) => last = format!("{endpoint}: {e}"),
        }
    }
    Err(last)
}

pub(crate) fn read_exact(s: &mut TcpStream, n: usize) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)
        .map_err(|e| format!("the connection broke ({e})"))?;
    Ok(b)
}

pub(crate) fn write_all(s: &mut TcpStream, b: &[u8]) -> Result<(), String> {
    s.write_all(b).map_err(|e| format!("the connection broke ({e})"))
}

//! HTTP/1.1 through the ingress: a request with the run's Host header; the answer's status must be
//! the one expected and its body must contain the expected text.

use super::{connect, write_all};
use std::io::Read;
use std::time::Duration;

pub struct Expect<'a> {
    /// None: any HTTP answer will do (the controller itself answers).
    pub status: Option<u16>,
    pub body_contains: Option<&'a str>,
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&rest[..i])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .unwrap_or(0);
        rest = &rest[i + 2..];
        if size == 0 || size > rest.len() {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    out
}

pub fn check(
    host: &str,
    port: u16,
    host_header: &str,
    path: &str,
    expect: &Expect,
    timeout: Duration,
) -> Result<(), String> {
    let endpoint = format!("http://{host}:{port}{path} (Host: {host_header})");
    let mut s = connect(host, port, timeout)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: devenv-smoke\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    write_all(&mut s, req.as_bytes()).map_err(|e| format!("{endpoint}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("{endpoint}: no complete answer ({e})"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{endpoint}: the answer is not HTTP"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status_line = head.lines().next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{endpoint}: the answer is not HTTP: {status_line:?}"))?;
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"))
    {
        body = dechunk(&body);
    }
    if let Some(want) = expect.status
        && status != want
    {
        return Err(format!("{endpoint}: answered {status_line:?}, expected status {want}"));
    }
    if let Some(text) = expect.body_contains
        && !String::from_utf8_lossy(&body).contains(text)
    {
        return Err(format!(
            "{endpoint}: answered {status_line:?} without the expected text {text:?}"
        ));
    }
    Ok(())
}

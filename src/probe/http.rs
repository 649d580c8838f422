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

/// One answer: the status line, the status and the (de-chunked) body.
pub struct Answer {
    pub status_line: String,
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET path` with `Host: host_header`; `endpoint` names it in every message.
pub fn get(host: &str, port: u16, host_header: &str, path: &str, timeout: Duration) -> Result<Answer, String> {
    let endpoint = describe(host, port, host_header, path);
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
    let status_line = head.lines().next().unwrap_or("").to_string();
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
    Ok(Answer {
        status_line,
        status,
        body,
    })
}

pub fn describe(host: &str, port: u16, host_header: &str, path: &str) -> String {
    format!("http://{host}:{port}{path} (Host: {host_header})")
}

pub fn check(
    host: &str,
    port: u16,
    host_header: &str,
    path: &str,
    expect: &Expect,
    timeout: Duration,
) -> Result<(), String> {
    let endpoint = describe(host, port, host_header, path);
    let a = get(host, port, host_header, path, timeout)?;
    let status_line = &a.status_line;
    if let Some(want) = expect.status
        && a.status != want
    {
        return Err(format!("{endpoint}: answered {status_line:?}, expected status {want}"));
    }
    if let Some(text) = expect.body_contains
        && !String::from_utf8_lossy(&a.body).contains(text)
    {
        return Err(format!(
            "{endpoint}: answered {status_line:?} without the expected text {text:?}"
        ));
    }
    Ok(())
}

fn json_answer(
    host: &str,
    port: u16,
    host_header: &str,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let endpoint = describe(host, port, host_header, path);
    let a = get(host, port, host_header, path, timeout)?;
    if a.status != 200 {
        let body = String::from_utf8_lossy(&a.body);
        let first = body.lines().next().unwrap_or("").chars().take(120).collect::<String>();
        return Err(format!("{endpoint}: answered {:?} {first}", a.status_line));
    }
    serde_json::from_slice(&a.body).map_err(|e| format!("{endpoint}: the answer is not JSON ({e})"))
}

/// Prometheus through the ingress: its targets API must list at least one target whose last
/// scrape was healthy. When none is, the first target's error says why.
pub fn prometheus(host: &str, port: u16, host_header: &str, timeout: Duration) -> Result<(), String> {
    let path = "/api/v1/targets?state=active";
    let endpoint = describe(host, port, host_header, path);
    let v = json_answer(host, port, host_header, path, timeout)?;
    let targets = v
        .pointer("/data/activeTargets")
        .and_then(|t| t.as_array())
        .ok_or_else(|| format!("{endpoint}: the answer has no data.activeTargets"))?;
    if targets.iter().any(|t| t["health"] == "up") {
        return Ok(());
    }
    match targets.first() {
        None => Err(format!("{endpoint}: Prometheus has no scrape targets yet")),
        Some(t) => Err(format!(
            "{endpoint}: none of Prometheus's {} target(s) is healthy; {} is {}: {}",
            targets.len(),
            t["scrapeUrl"].as_str().unwrap_or("the first"),
            t["health"].as_str().unwrap_or("unknown"),
            t["lastError"].as_str().unwrap_or("")
        )),
    }
}

/// Grafana through the ingress: `/api/health` answers 200 and says its database is ok.
pub fn grafana(host: &str, port: u16, host_header: &str, timeout: Duration) -> Result<(), String> {
    let path = "/api/health";
    let endpoint = describe(host, port, host_header, path);
    let v = json_answer(host, port, host_header, path, timeout)?;
    match v["database"].as_str() {
        Some("ok") => Ok(()),
        other => Err(format!(
            "{endpoint}: Grafana's database is {}",
            other.unwrap_or("not reported")
        )),
    }
}

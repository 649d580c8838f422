//! Redis over RESP: AUTH (if a password is set), PING, SET with a TTL, GET, DEL.

use super::{connect, read_exact, write_all};
use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n{a}\r\n", a.len()).into_bytes());
    }
    out
}

fn line(s: &mut TcpStream) -> Result<String, String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        s.read_exact(&mut b)
            .map_err(|e| format!("the connection broke ({e})"))?;
        if b[0] == b'\n' && out.last() == Some(&b'\r') {
            out.pop();
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.push(b[0]);
        if out.len() > 1 << 16 {
            return Err("a reply line is too long: is this Redis?".into());
        }
    }
}

/// One reply: Ok(text) for a status, an integer or a bulk string (None for nil); Err for `-ERR …`.
fn reply(s: &mut TcpStream) -> Result<Result<Option<String>, String>, String> {
    let l = line(s)?;
    let (kind, rest) = l.split_at(l.len().min(1));
    Ok(match kind {
        "+" | ":" => Ok(Some(rest.to_string())),
        "-" => Err(rest.to_string()),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| format!("not a Redis reply: {l:?}"))?;
            if n < 0 {
                Ok(None)
            } else {
                let b = read_exact(s, n as usize + 2)?;
                Ok(Some(String::from_utf8_lossy(&b[..n as usize]).into_owned()))
            }
        }
        _ => return Err(format!("not a Redis reply: {l:?}")),
    })
}

/// PING, then SET/GET/DEL of a key unique to the run; the key also expires by itself in 60 s.
pub fn check(host: &str, port: u16, password: Option<&str>, token: &str, timeout: Duration) -> Result<(), String> {
    let endpoint = format!("{host}:{port}");
    let mut s = connect(host, port, timeout)?;
    let mut ask = |args: &[&str]| -> Result<Result<Option<String>, String>, String> {
        write_all(&mut s, &command(args))?;
        reply(&mut s)
    };
    let fail = |what: &str, e: String| format!("redis at {endpoint}: {what}: {e}");
    if let Some(p) = password {
        ask(&["AUTH", p])
            .map_err(|e| fail("AUTH", e))?
            .map_err(|e| fail("authentication failed", e))?;
    }
    match ask(&["PING"]).map_err(|e| fail("PING", e))? {
        Ok(Some(p)) if p == "PONG" => {}
        Ok(other) => return Err(fail("PING", format!("answered {other:?}, not PONG"))),
        Err(e) if e.starts_with("NOAUTH") => return Err(fail("PING", format!("{e} (devenv has no password for it)"))),
        Err(e) => return Err(fail("PING", e)),
    }
    let key = format!("devenv:smoke:{token}");
    ask(&["SET", &key, token, "EX", "60"])
        .map_err(|e| fail("SET", e))?
        .map_err(|e| fail("SET", e))?;
    let got = ask(&["GET", &key])
        .map_err(|e| fail("GET", e))?
        .map_err(|e| fail("GET", e))?;
    let deleted = ask(&["DEL", &key])
        .map_err(|e| fail("DEL", e))?
        .map_err(|e| fail("DEL", e))?;
    if got.as_deref() != Some(token) {
        return Err(fail(
            "GET",
            format!("read back {got:?} instead of the value just written"),
        ));
    }
    if deleted.as_deref() != Some("1") {
        return Err(fail("DEL", format!("deleted {deleted:?} keys instead of 1")));
    }
    Ok(())
}

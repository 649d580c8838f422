//! PostgreSQL over its wire protocol (v3): log in (SCRAM-SHA-256 or a cleartext password), then
//! write, read back and delete a row unique to the run in a table of devenv's own.

use super::scram::{Scram, b64decode};
use super::{connect, read_exact, write_all};
use std::net::TcpStream;
use std::time::Duration;

pub struct Login<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub database: &'a str,
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend(((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn read_message(s: &mut TcpStream) -> Result<(u8, Vec<u8>), String> {
    let head = read_exact(s, 5)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if !(4..=1 << 24).contains(&len) {
        return Err("not the PostgreSQL protocol".into());
    }
    Ok((head[0], read_exact(s, len - 4)?))
}

/// An ErrorResponse's message and SQLSTATE.
fn error_text(body: &[u8]) -> String {
    let mut msg = String::new();
    let mut code = String::new();
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let text = String::from_utf8_lossy(field.get(1..).unwrap_or_default()).into_owned();
        match field[0] {
            b'M' => msg = text,
            b'C' => code = text,
            _ => {}
        }
    }
    format!("{msg} (SQLSTATE {code})")
}

fn login(s: &mut TcpStream, l: &Login) -> Result<(), String> {
    let mut params = Vec::new();
    for (k, v) in [
        ("user", l.user),
        ("database", l.database),
        ("application_name", "devenv-smoke"),
    ] {
        params.extend(k.as_bytes());
        params.push(0);
        params.extend(v.as_bytes());
        params.push(0);
    }
    params.push(0);
    let mut startup = ((params.len() + 8) as u32).to_be_bytes().to_vec();
    startup.extend(196_608u32.to_be_bytes());
    startup.extend(params);
    write_all(s, &startup)?;
    let scram = Scram::new(super::scram::nonce()?);
    let mut expect_signature: Option<Vec<u8>> = None;
    loop {
        let (kind, body) = read_message(s)?;
        match kind {
            b'R' => {
                // Short messages are a wrong server, never a panic.
                let Some(head) = body.get(..4) else {
                    return Err("not the PostgreSQL protocol (a short authentication message)".into());
                };
                let code = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                match code {
                    0 => {}
                    3 => write_all(s, &message(b'p', &[l.password.as_bytes(), &[0]].concat()))?,
                    5 => return Err("the server asks for md5 passwords; devenv speaks scram-sha-256 (the default since PostgreSQL 14)".into()),
                    10 => {
                        if !String::from_utf8_lossy(&body[4..]).contains("SCRAM-SHA-256") {
                            return Err("the server offers no SCRAM-SHA-256".into());
                        }
                        let first = scram.client_first();
                        let mut b = b"SCRAM-SHA-256\0".to_vec();
                        b.extend((first.len() as u32).to_be_bytes());
                        b.extend(first.as_bytes());
                        write_all(s, &message(b'p', &b))?;
                    }
                    11 => {
                        let server_first = String::from_utf8_lossy(&body[4..]).into_owned();
                        let (fin, sig) = scram.client_final(l.password, &server_first).ok_or("the server's SCRAM challenge is malformed")?;
                        expect_signature = Some(sig);
                        write_all(s, &message(b'p', fin.as_bytes()))?;
                    }
                    12 => {
                        let fin = String::from_utf8_lossy(&body[4..]).into_owned();
                        let got = fin.strip_prefix("v=").and_then(b64decode);
                        if got.is_none() || got != expect_signature {
                            return Err("the server's SCRAM signature is wrong: this is not the server devenv set up".into());
                        }
                    }
                    other => return Err(format!("unsupported authentication method {other}")),
                }
            }
            b'E' => return Err(error_text(&body)),
            b'Z' => return Ok(()),
            _ => {}
        }
    }
}

/// Runs one simple query; returns the first column of each row.
fn query(s: &mut TcpStream, sql: &str) -> Result<(Vec<String>, String), String> {
    write_all(s, &message(b'Q', &[sql.as_bytes(), &[0]].concat()))?;
    let mut rows = Vec::new();
    let mut tag = String::new();
    let mut error = None;
    loop {
        let (kind, body) = read_message(s)?;
        match kind {
            b'D' => {
                let bad = || "not the PostgreSQL protocol (a short data row)".to_string();
                let len = i32::from_be_bytes(body.get(2..6).and_then(|b| b.try_into().ok()).ok_or_else(bad)?);
                rows.push(if len < 0 {
                    String::new()
                } else {
                    let cell = body.get(6..6 + len as usize).ok_or_else(bad)?;
                    String::from_utf8_lossy(cell).into_owned()
                });
            }
            b'C' => tag = String::from_utf8_lossy(&body).trim_end_matches('\0').to_string(),
            b'E' => error = Some(error_text(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok((rows, tag)),
    }
}

pub fn check(host: &str, port: u16, l: &Login, token: &str, timeout: Duration) -> Result<(), String> {
    let endpoint = format!("postgresql://{}@{host}:{port}/{}", l.user, l.database);
    let fail = |what: &str, e: String| format!("{endpoint}: {what}: {e}");
    if !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(fail("token", "not hexadecimal".into()));
    }
    let mut s = connect(host, port, timeout)?;
    login(&mut s, l).map_err(|e| fail("login", e))?;
    query(
        &mut s,
        "CREATE TABLE IF NOT EXISTS devenv_smoke (token text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
    )
    .map_err(|e| fail("create table", e))?;
    query(&mut s, &format!("INSERT INTO devenv_smoke (token) VALUES ('{token}')")).map_err(|e| fail("insert", e))?;
    let read = query(
        &mut s,
        &format!("SELECT token FROM devenv_smoke WHERE token = '{token}'"),
    );
    // The row goes whatever the read said.
    let deleted = query(&mut s, &format!("DELETE FROM devenv_smoke WHERE token = '{token}'"));
    let _ = write_all(&mut s, &message(b'X', &[]));
    let (rows, _) = read.map_err(|e| fail("select", e))?;
    if rows != [token] {
        return Err(fail(
            "select",
            format!("read back {rows:?} instead of the row just written"),
        ));
    }
    let (_, tag) = deleted.map_err(|e| fail("delete", e))?;
    if tag != "DELETE 1" {
        return Err(fail("delete", format!("the server said {tag:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod short_messages {
    use super::*;
    use std::io::{Read, Write};

    /// A server that reads the startup message and answers `reply`, then closes.
    fn server(reply: Vec<u8>) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&reply);
            }
        });
        port
    }

    #[test]
    fn short_or_cut_server_messages_are_errors_not_panics() {
        let login = Login {
            user: "postgres",
            password: "pw",
            database: "postgres",
        };
        for reply in [
            message(b'R', &[0, 0]),
            message(b'R', &[]),
            [
                message(b'R', &0u32.to_be_bytes()),
                message(b'Z', b"I"),
                message(b'D', &[0, 1, 0]),
            ]
            .concat(),
            [
                message(b'R', &0u32.to_be_bytes()),
                message(b'Z', b"I"),
                message(b'D', &[0, 1, 0, 0, 0, 9, b'x']),
            ]
            .concat(),
            message(b'E', &[0, b'M']),
        ] {
            let port = server(reply.clone());
            let r = std::panic::catch_unwind(|| check("127.0.0.1", port, &login, "abc123", Duration::from_secs(2)));
            let r = r.unwrap_or_else(|_| panic!("panicked on {reply:?}"));
            assert!(r.is_err(), "{reply:?}: {r:?}");
        }
    }

    #[test]
    fn the_scram_nonce_is_fresh_randomness_not_the_run_token() {
        let a = super::super::scram::nonce().unwrap();
        let b = super::super::scram::nonce().unwrap();
        assert_ne!(a, b);
        assert_eq!(super::super::scram::b64decode(&a).unwrap().len(), 18);
    }
}

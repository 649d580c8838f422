//! The smoke probes against REAL servers on 127.0.0.1: PostgreSQL (SCRAM-SHA-256), Redis (with a
//! password) and nginx, started by `scripts/test-servers` (which `.ci/run` runs). With CI set, a
//! missing server fails these tests; elsewhere they say they did not run.

use devenv::adapters::probe::ServiceProber;
use devenv::exec::Cancel;
use devenv::probe::{http, postgres, redis, token};
use devenv::world::{Check, Probe, Prober};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

/// (host, port, password) of a test server, or None when not running outside CI.
fn server(var: &str) -> Option<(String, u16, String)> {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    match std::env::var(var) {
        Ok(addr) => {
            let (h, p) = addr.rsplit_once(':').expect("host:port");
            Some((
                h.to_string(),
                p.parse().unwrap(),
                std::env::var("DEVENV_TEST_PASSWORD").unwrap_or_default(),
            ))
        }
        Err(_) if ci => {
            panic!("CI is set but {var} is not: .ci/run must start the test servers (scripts/test-servers)")
        }
        Err(_) => {
            eprintln!("NOT RUN: {var} is not set; run `eval \"$(bash scripts/test-servers)\"` first");
            None
        }
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn real_postgres_row_is_written_read_back_and_deleted() {
    let Some((h, p, pw)) = server("DEVENV_TEST_POSTGRES") else {
        return;
    };
    let login = postgres::Login {
        user: "postgres",
        password: &pw,
        database: "postgres",
    };
    let tok = token();
    postgres::check(&h, p, &login, &tok, T).unwrap();
    // Run twice with the same token: the first run left no row behind, so the insert works again.
    postgres::check(&h, p, &login, &tok, T).unwrap();
}

#[test]
fn real_postgres_wrong_password_and_closed_port_name_the_endpoint() {
    let Some((h, p, _)) = server("DEVENV_TEST_POSTGRES") else {
        return;
    };
    let login = postgres::Login {
        user: "postgres",
        password: "not-the-password",
        database: "postgres",
    };
    let err = postgres::check(&h, p, &login, &token(), T).unwrap_err();
    assert!(
        err.contains(&format!("postgresql://postgres@{h}:{p}/postgres")),
        "{err}"
    );
    assert!(err.contains("password authentication failed"), "{err}");
    let closed = closed_port();
    let err = postgres::check(&h, closed, &login, &token(), T).unwrap_err();
    assert!(err.contains(&format!("{h}:{closed}")), "{err}");
}

#[test]
fn real_redis_ping_set_get_del_and_its_failures() {
    let Some((h, p, pw)) = server("DEVENV_TEST_REDIS") else {
        return;
    };
    redis::check(&h, p, Some(&pw), &token(), T).unwrap();
    let err = redis::check(&h, p, Some("wrong"), &token(), T).unwrap_err();
    assert!(
        err.contains(&format!("redis at {h}:{p}")) && err.contains("authentication failed"),
        "{err}"
    );
    let err = redis::check(&h, p, None, &token(), T).unwrap_err();
    assert!(err.contains("NOAUTH"), "{err}");
    let closed = closed_port();
    let err = redis::check(&h, closed, None, &token(), T).unwrap_err();
    assert!(err.contains(&format!("{h}:{closed}")), "{err}");
}

#[test]
fn real_http_answer_is_checked_by_status_and_text() {
    let Some((h, p, _)) = server("DEVENV_TEST_HTTP") else {
        return;
    };
    let want = http::Expect {
        status: Some(200),
        body_contains: Some("devenv-smoke-ok"),
    };
    http::check(&h, p, "smoke.devenv.test", "/", &want, T).unwrap();
    let err = http::check(&h, p, "other.devenv.test", "/", &want, T).unwrap_err();
    assert!(
        err.contains(&format!("http://{h}:{p}/ (Host: other.devenv.test)")),
        "{err}"
    );
    assert!(err.contains("404"), "{err}");
    let text_only = http::Expect {
        status: None,
        body_contains: Some("a token that is not there"),
    };
    let err = http::check(&h, p, "smoke.devenv.test", "/", &text_only, T).unwrap_err();
    assert!(err.contains("without the expected text"), "{err}");
    let closed = closed_port();
    assert!(
        http::check(&h, closed, "x", "/", &want, T)
            .unwrap_err()
            .contains(&format!("{h}:{closed}"))
    );
}

#[test]
fn real_prober_retries_until_its_timeout_then_names_the_check() {
    let Some((h, p, pw)) = server("DEVENV_TEST_POSTGRES") else {
        return;
    };
    let probe = Probe {
        name: "postgresql".into(),
        host: h.clone(),
        port: p,
        check: Check::Postgres {
            user: "postgres".into(),
            database: "postgres".into(),
        },
    };
    ServiceProber
        .probe(&probe, Some(&pw), &token(), T, &Cancel::new())
        .unwrap();
    let closed = Probe {
        port: closed_port(),
        ..probe
    };
    let t = std::time::Instant::now();
    let err = ServiceProber
        .probe(&closed, Some(&pw), &token(), Duration::from_secs(1), &Cancel::new())
        .unwrap_err();
    assert!(t.elapsed() >= Duration::from_secs(1) && t.elapsed() < Duration::from_secs(5));
    assert!(
        err.to_string().starts_with("postgresql: ") && err.to_string().contains("still failing after 1s"),
        "{err}"
    );
    assert!(err.help().is_some());
}

#[test]
fn real_http_probe_through_a_token_host_accepts_only_the_runs_own_token() {
    // nginx answers `<token>.echo.devenv.test` with the token: the run's echo backend behind the ingress.
    let Some((h, p, _)) = server("DEVENV_TEST_HTTP") else {
        return;
    };
    let tok = token();
    let probe = |host_header: String| Probe {
        name: "http".into(),
        host: h.clone(),
        port: p,
        check: Check::Http { host_header },
    };
    ServiceProber
        .probe(&probe(format!("{tok}.echo.devenv.test")), None, &tok, T, &Cancel::new())
        .unwrap();
    // Another run's backend (or the controller's default backend) does not pass for this run.
    let other = token();
    let err = ServiceProber
        .probe(
            &probe(format!("{other}.echo.devenv.test")),
            None,
            &tok,
            Duration::from_secs(1),
            &Cancel::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("(Host: {other}.echo.devenv.test)")), "{err}");
    assert!(err.contains(&format!("without the expected text \"{tok}\"")), "{err}");
    let err = ServiceProber
        .probe(
            &probe("nobody.devenv.test".into()),
            None,
            &tok,
            Duration::from_secs(1),
            &Cancel::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected status 200"), "{err}");
}

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

/// A one-thread HTTP/1.1 server on 127.0.0.1 answering by Host header, for the JSON APIs of
/// Prometheus and Grafana (not real Prometheus or Grafana: their documented answer shapes).
fn json_server(routes: Vec<(&'static str, u16, String)>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut host = String::new();
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(h) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = h.trim().to_string();
                }
                line.clear();
            }
            let (status, body) = routes
                .iter()
                .find(|(h, _, _)| *h == host)
                .map(|(_, s, b)| (*s, b.clone()))
                .unwrap_or((404, "404 page not found\n".into()));
            let mut w = conn;
            let _ = write!(
                w,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn prometheus_needs_a_healthy_target_and_grafana_an_ok_database() {
    let target = |health: &str, err: &str| {
        format!(
            r#"{{"scrapePool":"serviceMonitor/monitoring/monitoring-kube-state-metrics/0","scrapeUrl":"http://10.244.0.7:8080/metrics","health":"{health}","lastError":"{err}","labels":{{"job":"kube-state-metrics"}}}}"#
        )
    };
    let answer = |targets: Vec<String>| {
        format!(
            r#"{{"status":"success","data":{{"activeTargets":[{}],"droppedTargets":[]}}}}"#,
            targets.join(",")
        )
    };
    let port = json_server(vec![
        (
            "prometheus.up.localhost",
            200,
            answer(vec![target("down", "connection refused"), target("up", "")]),
        ),
        (
            "prometheus.down.localhost",
            200,
            answer(vec![target(
                "down",
                "Get \\\"http://10.244.0.7:8080/metrics\\\": context deadline exceeded",
            )]),
        ),
        ("prometheus.empty.localhost", 200, answer(vec![])),
        (
            "grafana.up.localhost",
            200,
            r#"{"commit":"abc","database":"ok","version":"12.3.0"}"#.into(),
        ),
        (
            "grafana.db.localhost",
            503,
            r#"{"commit":"abc","database":"failing","version":"12.3.0"}"#.into(),
        ),
    ]);
    let h = "127.0.0.1";
    http::prometheus(h, port, "prometheus.up.localhost", T).unwrap();
    let e = http::prometheus(h, port, "prometheus.down.localhost", T).unwrap_err();
    assert!(
        e.contains("none of Prometheus's 1 target(s) is healthy; http://10.244.0.7:8080/metrics is down: Get")
            && e.contains("context deadline exceeded"),
        "{e}"
    );
    let e = http::prometheus(h, port, "prometheus.empty.localhost", T).unwrap_err();
    assert!(e.contains("Prometheus has no scrape targets yet"), "{e}");
    // The ingress answers 404 for a host it has no rule for (the chart's Ingress is missing).
    let e = http::prometheus(h, port, "prometheus.other.localhost", T).unwrap_err();
    assert!(
        e.contains("(Host: prometheus.other.localhost)") && e.contains("404"),
        "{e}"
    );
    http::grafana(h, port, "grafana.up.localhost", T).unwrap();
    let e = http::grafana(h, port, "grafana.db.localhost", T).unwrap_err();
    assert!(
        e.contains("/api/health (Host: grafana.db.localhost)") && e.contains("503"),
        "{e}"
    );
    // Through the prober, as `devenv test` runs it.
    let probe = Probe {
        name: "grafana".into(),
        host: h.into(),
        port,
        check: Check::Grafana {
            host_header: "grafana.up.localhost".into(),
        },
    };
    ServiceProber.probe(&probe, None, &token(), T, &Cancel::new()).unwrap();
}

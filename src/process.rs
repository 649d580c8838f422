//! Every subprocess devenv starts goes through here: an argv vector (never a shell), a timeout,
//! cancellation (SIGTERM forwarded, then SIGKILL after a grace period), and on failure an error
//! that carries the command line and the tail of its output.

use crate::error::Error;
use crate::exec::Cancel;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            ..Default::default()
        }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    pub fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = Some(data);
        self
    }
    /// The command as a user would type it (for messages only; never executed through a shell).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                    format!("'{}'", a.replace('\'', "'\\''"))
                } else {
                    a.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{program}` was not found on PATH")]
    NotFound { program: String },
    /// Led by the cause (the tool's own `Error: …` line), then the command, once, and the tail
    /// of what it printed.
    #[error("{}", failed_message(.command, *.code, .stderr))]
    Failed {
        command: String,
        code: i32,
        stdout: String,
        stderr: String,
    },
    #[error("`{command}` was killed by signal {signal}{}", tail_suffix(.stderr))]
    Signalled {
        command: String,
        /// `SIGKILL (9)`.
        signal: String,
        stderr: String,
    },
    #[error("`{command}` did not finish within {}s", .after.as_secs())]
    TimedOut { command: String, after: Duration },
    #[error("`{command}` was stopped")]
    Cancelled { command: String },
    #[error("could not run `{command}`: {message}")]
    Io { command: String, message: String },
}

/// The line of a tool's stderr that says what went wrong: the last one that starts the way
/// helm (`Error: …`), kubectl (`error: …`, `Error from server …`), kind (`ERROR: …`) and docker
/// (`Error response from daemon: …`) say it; else the last line it printed.
pub fn cause(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let is_cause = |l: &&&str| {
        ["Error:", "Error ", "error:", "ERROR:", "FATAL", "fatal:"]
            .iter()
            .any(|p| l.starts_with(p))
    };
    let line = lines.iter().rev().find(is_cause).or(lines.last())?;
    Some(tail(line, 1).trim_start().to_string())
}

fn failed_message(command: &str, code: i32, stderr: &str) -> String {
    let Some(cause) = cause(stderr) else {
        return format!("`{command}` exited with status {code}");
    };
    let t = tail(stderr, 12);
    let more = if t.lines().count() > 1 {
        format!(":\n{t}")
    } else {
        String::new()
    };
    format!("{cause}\n  `{command}` exited with status {code}{more}")
}

fn tail_suffix(stderr: &str) -> String {
    let t = tail(stderr, 12);
    if t.is_empty() { String::new() } else { format!(":\n{t}") }
}

/// The longest line of a tool's output an error message quotes.
const LINE: usize = 400;

/// The last `n` non-empty lines of some output, indented for an error message: each cut to 400
/// characters (a tool can print megabytes on one line) and cleaned of escape sequences and
/// control characters (see `output::sanitize`).
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| {
            let clean = crate::output::sanitize(l);
            match clean.char_indices().nth(LINE) {
                Some((i, _)) => format!("  {}… ({} more characters)", &clean[..i], clean[i..].chars().count()),
                None => format!("  {clean}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `SIGKILL (9)`.
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    };
    format!("{name} ({sig})")
}

impl RunError {
    /// Converts into devenv's error, keeping a cancellation an interruption.
    pub fn into_error(self, cancel: &Cancel, help: &str) -> Error {
        match self {
            RunError::Cancelled { .. } => cancel.error(),
            RunError::NotFound { program } => Error::prerequisite(
                format!("`{program}` was not found on PATH"),
                format!("install {program} (see `devenv doctor`), or put it on PATH"),
            ),
            other => Error::failed(other.to_string(), help),
        }
    }
}

/// A child whose stdout is read as it comes (`docker save` streamed into several nodes), made
/// and ended by the same chokepoint as [`Runner::run`].
pub trait Stream: Send {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
    /// Waits for the child to end (SIGTERM to its process group if `cancel` trips or its timeout
    /// passes, SIGKILL after the grace period): its output, or why it failed.
    fn finish(self: Box<Self>, cancel: &Cancel) -> Result<Output, RunError>;
}

/// Runs commands. The real one spawns processes; tests script one.
pub trait Runner: Send + Sync {
    fn run(&self, cmd: &Cmd, cancel: &Cancel) -> Result<Output, RunError>;

    /// The command with its stdout to read as it comes. A runner that cannot stream runs the
    /// command to its end and hands its stdout out afterwards.
    fn stream(&self, cmd: &Cmd, cancel: &Cancel) -> Result<Box<dyn Stream>, RunError> {
        let out = self.run(cmd, cancel)?;
        Ok(Box::new(Finished {
            stdout: std::io::Cursor::new(out.stdout.clone().into_bytes()),
            out,
        }))
    }
}

struct Finished {
    stdout: std::io::Cursor<Vec<u8>>,
    out: Output,
}

impl Stream for Finished {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stdout.read(buf)
    }
    fn finish(self: Box<Self>, _cancel: &Cancel) -> Result<Output, RunError> {
        Ok(self.out)
    }
}

/// How long a child gets to exit after SIGTERM before SIGKILL (helm needs time to record state).
const GRACE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct SystemRunner;

/// A spawned child: its own process group, stdin written and stderr read on threads.
struct Spawned {
    child: std::process::Child,
    command: String,
    timeout: Option<Duration>,
    started: Instant,
    stdin_thread: Option<std::thread::JoinHandle<()>>,
    err_rx: std::sync::mpsc::Receiver<String>,
}

fn read_all(mut r: Box<dyn Read + Send>) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

fn spawn(cmd: &Cmd, cancel: &Cancel) -> Result<Spawned, RunError> {
    let command = cmd.display();
    if cancel.is_cancelled() {
        return Err(RunError::Cancelled { command });
    }
    let mut c = Command::new(&cmd.program);
    // Its own process group, so that a signal reaches the tool and everything it started.
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    c.args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RunError::NotFound {
            program: cmd.program.clone(),
        },
        _ => RunError::Io {
            command: command.clone(),
            message: e.to_string(),
        },
    })?;
    let stdin_thread = cmd.stdin.clone().zip(child.stdin.take()).map(|(data, mut pipe)| {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let err_rx = read_all(Box::new(child.stderr.take().expect("piped")));
    Ok(Spawned {
        child,
        command,
        timeout: cmd.timeout,
        started: Instant::now(),
        stdin_thread,
        err_rx,
    })
}

impl Spawned {
    /// Waits for the end; `stdout` is what was read of it (by the caller or a thread).
    fn wait(mut self, cancel: &Cancel, stdout: impl FnOnce() -> String) -> Result<Output, RunError> {
        let command = self.command.clone();
        let mut term_sent: Option<Instant> = None;
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => {
                    return Err(RunError::Io {
                        command,
                        message: e.to_string(),
                    });
                }
            }
            let over = self.timeout.is_some_and(|t| self.started.elapsed() > t);
            if (cancel.is_cancelled() || over) && term_sent.is_none() {
                timed_out = over;
                // SAFETY: kill(2) on our own child's process group; no memory is touched.
                unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGTERM) };
                term_sent = Some(Instant::now());
            }
            if term_sent.is_some_and(|t| t.elapsed() > GRACE) {
                // SAFETY: as above.
                unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(t) = self.stdin_thread.take() {
            let _ = t.join();
        }
        // A background process the tool left behind may hold the pipes open: do not wait for it.
        let drain = Duration::from_secs(2);
        let stdout = stdout();
        let stderr = self.err_rx.recv_timeout(drain).unwrap_or_default();
        if term_sent.is_some() {
            return Err(if timed_out {
                RunError::TimedOut {
                    command,
                    after: self.timeout.unwrap_or_default(),
                }
            } else {
                RunError::Cancelled { command }
            });
        }
        if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
            return Err(RunError::Signalled {
                command,
                signal: signal_name(sig),
                stderr,
            });
        }
        let code = status.code().unwrap_or(-1);
        if code != 0 {
            return Err(RunError::Failed {
                command,
                code,
                stdout,
                stderr,
            });
        }
        Ok(Output { code, stdout, stderr })
    }
}

struct SystemStream {
    spawned: Spawned,
    stdout: std::process::ChildStdout,
}

impl Stream for SystemStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stdout.read(buf)
    }
    fn finish(self: Box<Self>, cancel: &Cancel) -> Result<Output, RunError> {
        let SystemStream { spawned, stdout } = *self;
        drop(stdout);
        spawned.wait(cancel, String::new)
    }
}

/// A runner that says what it runs (`-vv`): each command line, how long it took and how it ended.
pub struct Traced {
    pub inner: std::sync::Arc<dyn Runner>,
    pub trace: std::sync::Arc<dyn Fn(&str) + Send + Sync>,
}

impl Runner for Traced {
    fn run(&self, cmd: &Cmd, cancel: &Cancel) -> Result<Output, RunError> {
        let t = std::time::Instant::now();
        let r = self.inner.run(cmd, cancel);
        let how = match &r {
            Ok(o) => format!("exit {}", o.code),
            Err(RunError::Failed { code, .. }) => format!("exit {code}"),
            Err(e) => e.to_string().lines().next().unwrap_or_default().to_string(),
        };
        (self.trace)(&format!(
            "   $ {} ({} ms, {how})",
            cmd.display(),
            t.elapsed().as_millis()
        ));
        r
    }

    fn stream(&self, cmd: &Cmd, cancel: &Cancel) -> Result<Box<dyn Stream>, RunError> {
        (self.trace)(&format!("   $ {} (streamed)", cmd.display()));
        self.inner.stream(cmd, cancel)
    }
}

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd, cancel: &Cancel) -> Result<Output, RunError> {
        let mut spawned = spawn(cmd, cancel)?;
        let out_rx = read_all(Box::new(spawned.child.stdout.take().expect("piped")));
        spawned.wait(cancel, || {
            out_rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default()
        })
    }

    fn stream(&self, cmd: &Cmd, cancel: &Cancel) -> Result<Box<dyn Stream>, RunError> {
        let mut spawned = spawn(cmd, cancel)?;
        let stdout = spawned.child.stdout.take().expect("piped");
        Ok(Box::new(SystemStream { spawned, stdout }))
    }
}

/// A runner for tests: answers from a script keyed by argv prefix and records every call.
/// An argv prefix and the answer to commands that start with it.
type Answer = (Vec<String>, Result<Output, (i32, String)>);

#[derive(Default)]
pub struct ScriptedRunner {
    script: Mutex<Vec<Answer>>,
    calls: Mutex<Vec<Cmd>>,
}

impl ScriptedRunner {
    pub fn new() -> Self {
        Self::default()
    }
    /// Answers commands starting with `prefix` with `stdout` and status 0.
    pub fn ok(&self, prefix: &[&str], stdout: &str) -> &Self {
        self.push(
            prefix,
            Ok(Output {
                code: 0,
                stdout: stdout.into(),
                stderr: String::new(),
            }),
        )
    }
    /// Answers commands starting with `prefix` with a failure.
    pub fn fail(&self, prefix: &[&str], code: i32, stderr: &str) -> &Self {
        self.push(prefix, Err((code, stderr.into())))
    }
    fn push(&self, prefix: &[&str], r: Result<Output, (i32, String)>) -> &Self {
        self.script
            .lock()
            .unwrap()
            .push((prefix.iter().map(|s| s.to_string()).collect(), r));
        self
    }
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().iter().map(Cmd::argv).collect()
    }
    pub fn last_stdin(&self) -> Option<Vec<u8>> {
        self.calls.lock().unwrap().last().and_then(|c| c.stdin.clone())
    }
}

impl Runner for ScriptedRunner {
    fn run(&self, cmd: &Cmd, _cancel: &Cancel) -> Result<Output, RunError> {
        self.calls.lock().unwrap().push(cmd.clone());
        let argv = cmd.argv();
        let script = self.script.lock().unwrap();
        let hit = script.iter().rev().find(|(p, _)| argv.starts_with(p));
        match hit {
            Some((_, Ok(o))) => Ok(o.clone()),
            Some((_, Err((code, stderr)))) => Err(RunError::Failed {
                command: cmd.display(),
                code: *code,
                stdout: String::new(),
                stderr: stderr.clone(),
            }),
            None => Err(RunError::NotFound {
                program: cmd.program.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Signal;
    use crate::exec::Reason;

    #[test]
    fn a_failure_carries_the_command_and_the_tail_of_stderr() {
        let cmd = Cmd::new("sh").args(["-c", "for i in $(seq 1 30); do echo line$i >&2; done; exit 4"]);
        let err = SystemRunner.run(&cmd, &Cancel::new()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exited with status 4"), "{msg}");
        assert!(msg.contains("line30") && !msg.contains("line10\n"), "{msg}");
        assert!(msg.contains("'for i in"), "the command is shown quoted: {msg}");
    }

    #[test]
    fn a_failure_leads_with_the_tools_own_error_line_and_names_the_command_once() {
        // helm --debug prints its error first and a Go stack after it (a verbatim sample).
        let stderr = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/samples/helm/upgrade-fail-context-deadline-debug-v3.partial.stderr.txt"
        ))
        .unwrap();
        let e = RunError::Failed {
            command: "helm upgrade --install --namespace=redis -- redis oci://x/redis".into(),
            code: 1,
            stdout: String::new(),
            stderr,
        };
        let msg = e.to_string();
        assert_eq!(
            msg.lines().next().unwrap(),
            "Error: UPGRADE FAILED: create: failed to create: context deadline exceeded"
        );
        assert_eq!(msg.matches("helm upgrade --install").count(), 1, "{msg}");
        assert!(msg.contains("exited with status 1:"), "{msg}");
        // kind's own ERROR line, with docker's reason in the tail after it (a verbatim sample).
        let stderr = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/samples/kind/create-cluster-tty-fail-port-in-use-chaosmesh666.stderr.txt"
        ))
        .unwrap();
        let kind = RunError::Failed {
            command: "kind create cluster --name=devenv".into(),
            code: 1,
            stdout: String::new(),
            stderr,
        }
        .to_string();
        assert!(
            kind.starts_with("ERROR: failed to create cluster: docker run error:"),
            "{kind}"
        );
        assert!(kind.contains("bind: address already in use"), "{kind}");
    }

    #[test]
    fn a_tool_killed_by_a_signal_is_named_and_its_output_is_cut_and_cleaned() {
        let err = SystemRunner
            .run(
                &Cmd::new("sh").args(["-c", "echo dying >&2; kill -9 $$"]),
                &Cancel::new(),
            )
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("was killed by signal SIGKILL (9)") && msg.contains("dying"),
            "{msg}"
        );
        assert!(!msg.contains("status -1"), "{msg}");
        // A megabyte on one line, with colour codes and a terminal-title escape.
        let script = "printf '\\033]0;pwned\\007\\033[31mred\\033[0m'; head -c 1000000 /dev/zero | tr '\\0' a; exit 3";
        let err = SystemRunner
            .run(&Cmd::new("sh").args(["-c", &format!("({script}) >&2")]), &Cancel::new())
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.len() < 2000, "{} bytes", msg.len());
        // What the tool printed leads the message, cut and cleaned.
        let printed = msg.lines().next().unwrap();
        assert!(
            printed.starts_with("red") && printed.contains("more characters)"),
            "{printed:.300}"
        );
        assert!(
            !printed.contains('\x1b') && !printed.contains("pwned"),
            "{printed:.300}"
        );
        assert!(msg.contains("exited with status 3"), "{msg:.600}");
    }

    #[test]
    fn a_missing_program_is_a_prerequisite_error() {
        let err = SystemRunner
            .run(&Cmd::new("devenv-no-such-tool"), &Cancel::new())
            .unwrap_err();
        assert!(matches!(err, RunError::NotFound { .. }));
        assert_eq!(err.into_error(&Cancel::new(), "").exit_code(), 3);
    }

    #[test]
    fn a_timeout_stops_the_child() {
        let t = Instant::now();
        let err = SystemRunner
            .run(
                &Cmd::new("sleep").arg("30").timeout(Duration::from_millis(100)),
                &Cancel::new(),
            )
            .unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn cancelling_forwards_sigterm_and_the_child_may_clean_up() {
        let dir = std::env::temp_dir().join(format!("devenv-term-{}", std::process::id()));
        let marker = dir.with_extension("cleaned");
        let _ = std::fs::remove_file(&marker);
        let script = format!("trap 'touch {}; exit 0' TERM; sleep 30 & wait", marker.display());
        let cancel = Cancel::new();
        let c = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            c.cancel(Reason::Signal(Signal::Term));
        });
        let err = SystemRunner
            .run(&Cmd::new("sh").args(["-c", &script]), &cancel)
            .unwrap_err();
        assert!(matches!(err, RunError::Cancelled { .. }));
        assert!(marker.exists(), "the child's TERM trap ran");
        assert_eq!(err.into_error(&cancel, "").exit_code(), 143);
        let _ = std::fs::remove_file(&marker);
    }

    #[test]
    fn a_stream_is_read_as_it_comes_and_ends_like_a_run() {
        let mut st = SystemRunner
            .stream(
                &Cmd::new("sh").args(["-c", "printf abc; sleep 0.2; printf def"]),
                &Cancel::new(),
            )
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        loop {
            let n = st.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"abcdef");
        st.finish(&Cancel::new()).unwrap();
        // A failure carries the command and the tail of stderr, as `run`'s does.
        let st = SystemRunner
            .stream(
                &Cmd::new("sh").args(["-c", "echo 'no such image' >&2; exit 1"]),
                &Cancel::new(),
            )
            .unwrap();
        let err = st.finish(&Cancel::new()).unwrap_err().to_string();
        assert!(
            err.contains("exited with status 1") && err.contains("no such image"),
            "{err}"
        );
        // Cancelled: SIGTERM to its group, and said so.
        let cancel = Cancel::new();
        let st = SystemRunner.stream(&Cmd::new("sleep").arg("30"), &cancel).unwrap();
        cancel.cancel(Reason::Signal(Signal::Int));
        let t = Instant::now();
        assert!(matches!(st.finish(&cancel), Err(RunError::Cancelled { .. })));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn stdin_is_streamed_to_the_child() {
        let out = SystemRunner
            .run(&Cmd::new("cat").stdin(b"hello".to_vec()), &Cancel::new())
            .unwrap();
        assert_eq!(out.stdout, "hello");
    }
}

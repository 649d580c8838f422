//! Everything devenv prints goes through the reporter. Three modes:
//! - terminal: one indicatif line per step (spinner, elapsed, ✓/✗) on stderr;
//! - plain (a pipe, or CI set): timestamped lines on stderr;
//! - json (`-o json`): one JSON object per line on stdout, and nothing else there.

use crate::error::Error;
use crate::exec::{Status, StepResult, Undone};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Terminal,
    Plain,
    Json,
}

pub type Sink = Box<dyn Write + Send>;

/// How a json-mode command prints: a stream of events (up, down, test, run), or one document
/// at the end (status, plan, env, tools list, version, doctor), as JSON or YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Stream,
    Json,
    Yaml,
}

pub struct Reporter {
    pub mode: Mode,
    shape: Shape,
    /// The events of a document command, printed together by `finish`.
    document: Mutex<Vec<serde_json::Value>>,
    quiet: bool,
    /// 0, 1 (`-v`: debug lines), 2 (`-vv`: also every tool command, timed).
    verbose: u8,
    color: bool,
    out: Mutex<Sink>,
    err: Mutex<Sink>,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// A `summary` event went out (json mode): `finish` then adds none.
    summarized: AtomicBool,
}

fn clock() -> String {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// One document from a command's events: its main event's fields (the `status`, the `plan`,
/// the `env`), or its repeated events as a list (`tools`, `findings`), with the command, its
/// result and exit code, and any warnings and error.
fn document(command: &str, result: &str, code: u8, events: Vec<serde_json::Value>) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    let mut warnings = Vec::new();
    let mut lists: std::collections::BTreeMap<String, Vec<serde_json::Value>> = Default::default();
    for mut e in events {
        let kind = e["event"].as_str().unwrap_or_default().to_string();
        if let Some(o) = e.as_object_mut() {
            o.remove("event");
        }
        match kind.as_str() {
            "warning" | "info" => warnings.push(e["message"].clone()),
            "error" => {
                doc.insert("error".into(), e);
            }
            "summary" => {
                for (k, v) in e.as_object().cloned().unwrap_or_default() {
                    doc.entry(k).or_insert(v);
                }
            }
            _ => lists.entry(kind).or_default().push(e),
        }
    }
    for (kind, mut items) in lists {
        if items.len() == 1 && !matches!(kind.as_str(), "tool" | "finding") {
            for (k, v) in items.remove(0).as_object().cloned().unwrap_or_default() {
                doc.insert(k, v);
            }
        } else {
            doc.insert(format!("{kind}s"), items.into());
        }
    }
    doc.insert("command".into(), command.into());
    doc.insert("result".into(), result.into());
    doc.insert("exit_code".into(), code.into());
    if !warnings.is_empty() {
        doc.insert("messages".into(), warnings.into());
    }
    serde_json::Value::Object(doc)
}

/// Text from a tool made safe to print: escape sequences (colours, cursor moves, OSC titles and
/// hyperlinks) and control characters removed, so that nothing a tool printed can redraw or
/// retitle the user's terminal. Newlines and tabs stay.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC, DCS, SOS, PM, APC: up to BEL or ESC \.
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' {
                            break;
                        }
                        if c == '\x1b' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Reporter {
    pub fn new(mode: Mode, quiet: bool, verbose: u8, color: bool, out: Sink, err: Sink) -> Self {
        let multi = (mode == Mode::Terminal).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter {
            mode,
            shape: Shape::Stream,
            document: Mutex::new(Vec::new()),
            quiet,
            verbose,
            color,
            out: Mutex::new(out),
            err: Mutex::new(err),
            multi,
            bars: Mutex::new(HashMap::new()),
            summarized: AtomicBool::new(false),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// A line of data for stdout (plans, status tables, exports). Suppressed in json mode,
    /// where the caller emits the JSON form instead.
    pub fn data(&self, text: &str) {
        if self.mode == Mode::Json {
            return;
        }
        let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    }

    /// One JSON object on stdout (json mode only).
    pub fn json(&self, v: serde_json::Value) {
        if self.mode != Mode::Json {
            return;
        }
        let mut v = v;
        if self.shape != Shape::Stream {
            self.document.lock().unwrap_or_else(|e| e.into_inner()).push(v);
            return;
        }
        // Every event says when (UTC).
        if let Some(o) = v.as_object_mut() {
            o.insert("ts".into(), jiff::Timestamp::now().to_string().into());
        }
        if v["event"] == "summary" {
            self.summarized.store(true, Ordering::SeqCst);
            // A command sends its own summary only when it succeeded.
            if v.get("exit_code").is_none() {
                v["exit_code"] = 0.into();
            }
        }
        let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    }

    /// The last JSON line of every command (json mode): its `summary`, unless the command sent
    /// a fuller one itself, with the exit code either way.
    pub fn finish(&self, command: &str, code: u8) {
        let result = match code {
            0 => "ok",
            130 | 143 => "interrupted",
            _ => "failed",
        };
        if self.mode != Mode::Json {
            return;
        }
        if self.shape != Shape::Stream {
            let events = std::mem::take(&mut *self.document.lock().unwrap_or_else(|e| e.into_inner()));
            let doc = document(command, result, code, events);
            let text = match self.shape {
                Shape::Yaml => serde_saphyr::to_string(&doc).unwrap_or_default(),
                _ => format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default()),
            };
            let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
            return;
        }
        if self.summarized.load(Ordering::SeqCst) {
            return;
        }
        self.json(serde_json::json!({"event": "summary", "command": command, "result": result, "exit_code": code}));
    }

    /// Prints one document at the end instead of a stream of events (kubectl's and helm's
    /// `-o json` / `-o yaml`).
    pub fn as_document(&mut self, shape: Shape) {
        self.shape = shape;
    }

    /// Text for a person only (a table whose rows also went out as their own events): nothing
    /// in json mode.
    pub fn human(&self, text: &str) {
        if self.mode != Mode::Json {
            self.info(text);
        }
    }

    /// What a signal handler says while steps may be drawing: above the live lines on a
    /// terminal (a redraw does not erase it), even with --quiet.
    pub fn notice(&self, text: &str) {
        match self.mode {
            Mode::Json => self.json(serde_json::json!({"event": "warning", "message": text})),
            _ => self.line(&sanitize(text)),
        }
    }

    fn line(&self, text: &str) {
        if let Some(m) = &self.multi {
            let _ = m.println(text);
            return;
        }
        let mut e = self.err.lock().unwrap_or_else(|e| e.into_inner());
        let _ = if self.mode == Mode::Plain {
            writeln!(e, "[{}] {text}", clock())
        } else {
            writeln!(e, "{text}")
        };
        let _ = e.flush();
    }

    /// A question for the user on the terminal (devenv asks only when stdin is one), on stderr
    /// without a newline, clear of the progress lines.
    pub fn prompt(&self, text: &str) {
        if let Some(m) = &self.multi {
            m.clear().ok();
        }
        let mut e = self.err.lock().unwrap_or_else(|e| e.into_inner());
        let _ = write!(e, "{}", sanitize(text));
        let _ = e.flush();
    }

    pub fn info(&self, text: &str) {
        match self.mode {
            Mode::Json => self.json(serde_json::json!({"event": "info", "message": text})),
            _ if self.quiet => {}
            _ => self.line(&sanitize(text)),
        }
    }

    pub fn debug(&self, text: &str) {
        if self.verbose >= 1 {
            self.info(text);
        }
    }

    /// `-vv`: what devenv runs, as it runs it.
    pub fn trace(&self, text: &str) {
        if self.verbose >= 2 {
            match self.mode {
                Mode::Json => self.json(serde_json::json!({"event": "trace", "message": text})),
                _ => self.line(&sanitize(text)),
            }
        }
    }

    pub fn tracing(&self) -> bool {
        self.verbose >= 2
    }

    pub fn warn(&self, text: &str) {
        match self.mode {
            Mode::Json => self.json(serde_json::json!({"event": "warning", "message": text})),
            _ => self.line(&format!("{} {}", self.paint("33", "warning:"), sanitize(text))),
        }
    }

    pub fn step_started(&self, id: &str, label: &str) {
        match self.mode {
            Mode::Json => {
                self.json(serde_json::json!({"event": "step", "id": id, "label": label, "status": "started"}))
            }
            _ if self.quiet => {}
            Mode::Terminal => {
                let Some(m) = &self.multi else { return };
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(" {spinner} {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(label.to_string());
                bar.enable_steady_tick(Duration::from_millis(100));
                self.bars
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.to_string(), bar);
            }
            Mode::Plain => self.line(&format!(" • {label}")),
        }
    }

    pub fn step_finished(&self, r: &StepResult) {
        let elapsed = r.span.map(|(a, b)| b.saturating_sub(a)).unwrap_or_default();
        let (status, mark, detail) = match &r.status {
            Status::Ok => ("ok", self.paint("32", "✓"), String::new()),
            Status::Failed(m) => (
                "failed",
                self.paint("31", "✗"),
                format!(": {}", m.lines().next().unwrap_or("")),
            ),
            Status::Cancelled => ("cancelled", self.paint("33", "✗"), " (stopped)".to_string()),
            Status::Skipped => ("skipped", "-".to_string(), " (skipped)".to_string()),
        };
        if self.mode == Mode::Json {
            let mut v = serde_json::json!({"event": "step", "id": r.id, "label": r.label, "status": status, "elapsed_ms": elapsed.as_millis() as u64});
            if let Status::Failed(m) = &r.status {
                v["error"] = m.clone().into();
            }
            self.json(v);
            return;
        }
        let text = match r.span {
            Some(_) => format!(" {mark} {} ({}){detail}", r.label, seconds(elapsed)),
            None => format!(" {mark} {}{detail}", r.label),
        };
        if let Some(bar) = self.bars.lock().unwrap_or_else(|e| e.into_inner()).remove(&r.id) {
            bar.finish_and_clear();
        }
        if self.quiet && r.status == Status::Ok {
            return;
        }
        self.line(&text);
    }

    /// A live progress line (terminal only), e.g. bytes sent to one node; `done` clears it.
    pub fn progress(&self, key: &str, message: String, done: bool) {
        let Some(m) = &self.multi else { return };
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        if done {
            if let Some(b) = bars.remove(key) {
                b.finish_and_clear();
            }
            return;
        }
        let bar = bars.entry(key.to_string()).or_insert_with(|| {
            let b = m.add(ProgressBar::new_spinner());
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        bar.set_message(message);
    }

    /// An entry of the undo ledger run at the end: a `rollback` of what a failed run half made,
    /// or the `cleanup` of what every run removes again (the smoke namespace).
    pub fn undone(&self, u: &Undone) {
        let (event, done, failed) = match u.scope {
            crate::exec::Scope::OnFailure => ("rollback", "rolled back", "roll back"),
            crate::exec::Scope::Always => ("cleanup", "cleaned up", "clean up"),
        };
        match (&u.error, self.mode) {
            (None, Mode::Json) => self.json(serde_json::json!({"event": event, "undone": u.description})),
            (Some(e), Mode::Json) => {
                self.json(serde_json::json!({"event": event, "undone": u.description, "error": e}))
            }
            // A successful run's cleanup is no news.
            (None, _) if !u.after_failure => self.debug(&format!(" ↺ {done}: {}", u.description)),
            (None, _) => self.line(&format!(" ↺ {done}: {}", u.description)),
            (Some(e), _) => self.warn(&format!("could not {failed} {}: {e}", u.description)),
        }
    }

    pub fn error(&self, e: &Error) {
        if matches!(e, Error::Exited(_)) && self.mode != Mode::Json {
            return;
        }
        if self.mode == Mode::Json {
            self.json(e.to_json());
            return;
        }
        if let Some(m) = &self.multi {
            m.clear().ok();
        }
        let mut w = self.err.lock().unwrap_or_else(|e| e.into_inner());
        let text = sanitize(&e.render());
        let text = if self.color {
            text.replacen("error:", &self.paint("31;1", "error:"), 1)
                .replacen("help:", &self.paint("36", "help:"), 1)
        } else {
            text
        };
        let _ = w.write_all(text.as_bytes());
        let _ = w.flush();
    }
}

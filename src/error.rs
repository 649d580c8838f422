//! One error type for the whole binary: every message is rendered here, with a `help:` line,
//! and every error maps to one of the exit codes documented in README.md.

use std::fmt;

/// Exit codes (README.md, "Exit codes").
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PREREQUISITE: u8 = 3;
    pub const SIGINT: u8 = 130;
    pub const SIGTERM: u8 = 143;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Int => exit::SIGINT,
            Signal::Term => exit::SIGTERM,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }
}

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file is wrong: exit 2.
    #[error("{location}: {message}")]
    Config {
        location: Location,
        message: String,
        help: String,
    },
    /// The command line is wrong: exit 2.
    #[error("{message}")]
    Usage { message: String, help: String },
    /// Something the run needs is missing or blocking; nothing was changed: exit 3.
    #[error("{message}")]
    Prerequisite { message: String, help: String },
    /// A step failed: exit 1.
    #[error("{message}")]
    Failed { message: String, help: String },
    /// The run was interrupted: exit 130/143.
    #[error("interrupted by {}", .0.name())]
    Interrupted(Signal),
    /// `devenv run`: the command's own exit status, passed through without a message.
    #[error("the command exited with status {0}")]
    Exited(u8),
}

impl Error {
    pub fn config(location: Location, message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Config {
            location,
            message: message.into(),
            help: help.into(),
        }
    }
    pub fn usage(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            help: help.into(),
        }
    }
    pub fn failed(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Failed {
            message: message.into(),
            help: help.into(),
        }
    }
    pub fn prerequisite(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Prerequisite {
            message: message.into(),
            help: help.into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } | Error::Usage { .. } => exit::USAGE,
            Error::Prerequisite { .. } => exit::PREREQUISITE,
            Error::Failed { .. } => exit::FAILED,
            Error::Interrupted(s) => s.exit_code(),
            Error::Exited(code) => *code,
        }
    }

    /// The same error, its message led by what failed (`redis: …`), unless it already names it.
    pub fn in_step(self, what: &str) -> Self {
        let lead = |m: String| {
            if m.starts_with(what) { m } else { format!("{what}: {m}") }
        };
        match self {
            Error::Failed { message, help } => Error::Failed {
                message: lead(message),
                help,
            },
            Error::Prerequisite { message, help } => Error::Prerequisite {
                message: lead(message),
                help,
            },
            other => other,
        }
    }

    pub fn help(&self) -> Option<&str> {
        match self {
            Error::Config { help, .. }
            | Error::Usage { help, .. }
            | Error::Prerequisite { help, .. }
            | Error::Failed { help, .. } => Some(help.as_str()).filter(|h| !h.is_empty()),
            Error::Interrupted(_) | Error::Exited(_) => None,
        }
    }

    /// The text a user sees on stderr: `error: …` and, where there is one, `help: …`.
    pub fn render(&self) -> String {
        let mut out = format!("error: {self}\n");
        if let Some(help) = self.help() {
            out.push_str(&format!("help: {help}\n"));
        }
        out
    }

    /// The same error as one JSON object (for `-o json`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "event": "error",
            "message": self.to_string(),
            "exit_code": self.exit_code(),
        });
        if let Some(h) = self.help() {
            v["help"] = h.into();
        }
        if let Error::Config { location, .. } = self {
            v["file"] = location.file.clone().into();
            v["line"] = location.line.into();
            v["column"] = location.column.into();
        }
        v
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Reading a tool's version from what it prints, whatever the tool and its age.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Version {
    /// `1.2.3`, `v1.2`, `0.6.0-alpha+abc`, `v1.32.4-dispatcher`.
    pub fn parse(token: &str) -> Option<Version> {
        let t = token.strip_prefix('v').unwrap_or(token);
        let core: String = t.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let parts: Vec<&str> = core.split('.').filter(|p| !p.is_empty()).collect();
        if parts.len() < 2 || parts.len() > 3 || core.ends_with('.') && parts.len() == 3 {
            return None;
        }
        let n = |i: usize| parts.get(i).map(|p| p.parse::<u64>().ok()).unwrap_or(Some(0));
        Some(Version {
            major: n(0)?,
            minor: n(1)?,
            patch: n(2)?,
        })
    }
}

/// The first version-looking token in a tool's output: the tool's own version in every format
/// seen (`kind v0.33.0 go1.26.7 …`, `Client Version: v1.32.4`, JSON, `version.BuildInfo{Version:"v3.21"…}`,
/// `Docker version 28.2.2, build …`, `podman version 5.0.1`), skipping Go versions.
pub fn find(output: &str) -> Option<Version> {
    output
        .split(|c: char| c.is_whitespace() || "\"',{}:=()[]".contains(c))
        .filter(|t| !t.is_empty() && !t.starts_with("go"))
        .find_map(Version::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens() {
        assert_eq!(
            Version::parse("v1.2.3"),
            Some(Version {
                major: 1,
                minor: 2,
                patch: 3
            })
        );
        assert_eq!(
            Version::parse("3.21"),
            Some(Version {
                major: 3,
                minor: 21,
                patch: 0
            })
        );
        assert_eq!(
            Version::parse("0.6.0-alpha+77"),
            Some(Version {
                major: 0,
                minor: 6,
                patch: 0
            })
        );
        assert_eq!(Version::parse("1"), None);
        assert_eq!(Version::parse("abc"), None);
        assert!(Version::parse("1.10.0").unwrap() > Version::parse("1.9.9").unwrap());
    }
}

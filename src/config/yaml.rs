//! Parsing one YAML file into a typed, strict structure, turning every parser complaint into an
//! error that names file:line:column and says how to fix it.

use crate::error::{Error, Location};
use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

/// Where a spanned value stands in `file`.
pub fn at<T>(file: &str, s: &Spanned<T>) -> Location {
    Location {
        file: file.to_string(),
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

/// A number as the file wrote it (or whatever was written instead), for a caller that checks
/// its range and says which range: a port, a NodePort.
#[derive(serde::Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Number {
    Whole(i64),
    Fraction(f64),
    Flag(bool),
    Text(String),
}

/// A port read from `s`: a whole number in `range`, else an error naming the field, the value
/// and the range (`what`: the field as the user knows it, e.g. `nodePorts.redis`).
pub fn port(
    file: &str,
    s: &Spanned<Number>,
    what: &str,
    range: std::ops::RangeInclusive<u16>,
    help: &str,
) -> Result<u16, Error> {
    let (lo, hi) = (*range.start(), *range.end());
    let wrong = |m: String| Err(Error::config(at(file, s), m, help.to_string()));
    match &s.value {
        Number::Whole(n) if (i64::from(lo)..=i64::from(hi)).contains(n) => Ok(*n as u16),
        Number::Whole(n) => wrong(format!("{what}: {n} is outside {lo}-{hi}")),
        Number::Fraction(f) => wrong(format!("{what}: {f} is not a whole number from {lo} to {hi}")),
        Number::Flag(b) => wrong(format!(
            "{what}: `{b}` is not a number; write a whole number from {lo} to {hi}"
        )),
        Number::Text(t) => wrong(format!(
            "{what}: `{t}` is not a number; write a whole number from {lo} to {hi}"
        )),
    }
}

/// True when the text holds no YAML content at all (only blank lines and comments).
pub fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---")
}

pub fn parse<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, Error> {
    if is_blank(text) {
        return Err(Error::config(
            Location {
                file: file.to_string(),
                line: 1,
                column: 1,
            },
            "the file is empty",
            format!(
                "delete {file} to use devenv's built-in default, or run `devenv init --force` to write the default out"
            ),
        ));
    }
    serde_saphyr::from_str::<T>(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        let raw = e.without_snippet().to_string();
        let message = strip_position(&raw);
        let (message, help) = explain(&message);
        Error::config(
            Location {
                file: file.to_string(),
                line,
                column,
            },
            message,
            help,
        )
    })
}

fn strip_position(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw);
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

/// Rewrites the parser's wording into something a user can act on, with a `help:` line.
fn explain(message: &str) -> (String, String) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let choices: Vec<&str> = expected
            .split_once("expected one of ")
            .or_else(|| expected.split_once("expected "))
            .map(|(_, list)| {
                list.split(',')
                    .map(|s| s.trim().trim_matches('`'))
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let help = match did_you_mean(field, &choices) {
            Some(best) => format!("did you mean `{best}`?"),
            None if choices.is_empty() => "remove this key".to_string(),
            None => format!("remove it; the keys allowed here are: {}", choices.join(", ")),
        };
        return (format!("unknown key `{field}`"), help);
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        return (
            format!("required key `{field}` is missing"),
            format!("add `{field}:` here (see the default with `devenv init` in an empty directory)"),
        );
    }
    if let Some(ty) = message.strip_prefix("invalid ") {
        let expected = match ty.trim() {
            "u16" => "a whole number from 0 to 65535",
            "u32" => "a whole number from 0 to 4294967295",
            "u64" | "usize" => "a non-negative whole number",
            "i64" | "i32" => "a whole number",
            "bool" | "boolean" => "true or false",
            _ => ty,
        };
        return (
            format!("wrong type: expected {expected}"),
            format!("write {expected} here"),
        );
    }
    if message.starts_with("duplicate mapping key") {
        let key = message
            .trim_start_matches("duplicate mapping key:")
            .split(',')
            .next()
            .unwrap_or("")
            .trim();
        return (
            format!("key `{key}` appears twice"),
            "keep one of the two; YAML does not merge duplicate keys".to_string(),
        );
    }
    if message.starts_with("expected sequence start") {
        return (
            "wrong type: expected a list".to_string(),
            "write a YAML list here, one `- item` per line".to_string(),
        );
    }
    if message.starts_with("expected mapping start") {
        return (
            "wrong type: expected a mapping of keys to values".to_string(),
            "write `key: value` lines here".to_string(),
        );
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        return (
            format!("wrong type: {message}"),
            "change the value to the type named above".to_string(),
        );
    }
    if message.starts_with("unknown variant") {
        return (
            message.replace("unknown variant", "unknown value"),
            "use one of the values listed".to_string(),
        );
    }
    (
        format!("not valid YAML here: {message}"),
        "fix the YAML syntax at this position (indentation, brackets, quotes)".to_string(),
    )
}

/// The closest allowed name to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, choices: &[&'a str]) -> Option<&'a str> {
    choices
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key_for_a_typo() {
        assert_eq!(
            did_you_mean("hostPrt", &["containerPort", "hostPort"]),
            Some("hostPort")
        );
        assert_eq!(did_you_mean("zzzzzz", &["containerPort", "hostPort"]), None);
    }
}

//! Name and version rules shared by every configuration file.

/// A DNS-1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric, at most `max`.
pub fn dns_label(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > max {
        return Err(format!("is {} characters long; the limit is {max}", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "contains {c:?}; only lowercase letters, digits and '-' are allowed"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// Environment (and so kind cluster / minikube profile) names. kind derives container and
/// network names from it, so keep it a short DNS label.
pub fn environment(s: &str) -> Result<(), String> {
    dns_label(s, 40)
}

/// An exact version: MAJOR.MINOR.PATCH with an optional leading 'v' and pre-release/build suffix.
/// Ranges, wildcards and "latest" are refused.
pub fn exact_version(s: &str) -> Result<(), String> {
    let core = s.strip_prefix('v').unwrap_or(s);
    let core = core.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not an exact version; write MAJOR.MINOR.PATCH such as 1.6.7 (ranges, wildcards and `latest` float)"
        ))
    }
}

/// A container image reference pinned by digest: `repo[:tag]@sha256:<64 hex>`.
pub fn pinned_by_digest(image: &str) -> Result<(), String> {
    match image.split_once("@sha256:") {
        Some((repo, hex)) if !repo.is_empty() && hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(())
        }
        _ => Err(format!(
            "`{image}` is not pinned by digest; write it as `repository:tag@sha256:<64 hex digits>`"
        )),
    }
}

/// A container image reference with an explicit tag or digest that is not `latest`.
pub fn pinned_image(image: &str) -> Result<(), String> {
    if image.contains("@sha256:") {
        return pinned_by_digest(image);
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) => Err(format!("`{image}` uses the `latest` tag, which floats")),
        Some((repo, tag)) if !repo.is_empty() && !tag.is_empty() => Ok(()),
        _ => Err(format!("`{image}` has no tag; write it as `repository:tag`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_follow_dns_rules() {
        assert!(environment("devenv").is_ok());
        assert!(environment("team-a-2").is_ok());
        assert!(environment("Dev").is_err());
        assert!(environment("-dev").is_err());
        assert!(environment("dev_env").is_err());
        assert!(environment(&"a".repeat(41)).is_err());
    }

    #[test]
    fn versions_must_be_exact() {
        for ok in ["1.6.7", "v1.15.1", "4.3.0-rc.1"] {
            assert!(exact_version(ok).is_ok(), "{ok}");
        }
        for bad in ["^1.6", "1.x", "latest", "1.6", "~1.6.7", ">=1.0.0", ""] {
            assert!(exact_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_must_be_pinned() {
        assert!(
            pinned_by_digest(
                "kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed"
            )
            .is_ok()
        );
        assert!(pinned_by_digest("kindest/node:v1.36.4").is_err());
        assert!(pinned_image("localhost:5000/app:1.0").is_ok());
        assert!(pinned_image("localhost:5000/app").is_err());
        assert!(pinned_image("redis:latest").is_err());
    }
}

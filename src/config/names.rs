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
    let r = ImageRef::parse(image)?;
    match (&r.tag, &r.digest) {
        (_, Some(_)) => Ok(()),
        (Some(t), None) if t == "latest" => Err(format!("`{image}` uses the `latest` tag, which floats")),
        (Some(_), None) => Ok(()),
        (None, None) => Err(format!("`{image}` has no tag; write it as `repository:tag`")),
    }
}

/// A container image reference by the grammar Docker and containerd share
/// (distribution/reference): `[registry[:port]/]path[:tag][@sha256:<64 hex>]`, with the registry
/// and the `library/` prefix made explicit. Anything else (a flag such as `--output=x:1`, a space,
/// capitals in the path) is refused, so that a reference can never be read as something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `docker.io`, `registry.k8s.io`, `localhost:5000`.
    pub registry: String,
    /// The path in the registry: `library/postgres`, `ingress-nginx/controller`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(image: &str) -> Result<ImageRef, String> {
        let bad = |why: &str| Err(format!("`{image}` is not an image reference ({why})"));
        if image.is_empty() || image.len() > 255 {
            return bad("empty, or longer than 255 characters");
        }
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").unwrap_or("");
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
                    return bad("a digest is `sha256:` and 64 lowercase hex digits");
                }
                (r, Some(d.to_string()))
            }
            None => (image, None),
        };
        // The tag follows the last ':' after the last '/' (a registry's port has its ':' before it).
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            let ok = t.len() <= 128
                && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return bad("a tag is letters, digits, `_`, `.` and `-`, starting with a letter, digit or `_`");
            }
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        let first = parts[0];
        let has_registry = parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
        let registry = if has_registry {
            let (host, port) = first.split_once(':').unwrap_or((first, ""));
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !host_ok || (first.contains(':') && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))) {
                return bad("the registry is a host name with an optional :port");
            }
            parts.remove(0);
            first.to_string()
        } else {
            "docker.io".to_string()
        };
        for p in &parts {
            // path-component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
            let ok = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.ends_with(|c: char| c.is_ascii_alphanumeric())
                && !p.contains("..")
                && !p.contains("___");
            if !ok {
                return bad("a repository path is lowercase letters, digits and separators `.`, `_`, `-`, `/`");
            }
        }
        let mut repository = parts.join("/");
        if registry == "docker.io" && parts.len() == 1 {
            repository = format!("library/{repository}");
        }
        Ok(ImageRef {
            registry,
            repository,
            tag: tag.map(String::from),
            digest,
        })
    }

    /// The whole reference with nothing left implicit: `docker.io/library/postgres:18.6`.
    pub fn full(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The last part of the repository path (`postgres`, `controller`): what an image is of.
    pub fn name(&self) -> &str {
        self.repository.rsplit('/').next().unwrap_or(&self.repository)
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

    #[test]
    fn image_references_follow_the_reference_grammar_and_say_everything() {
        let full = |s: &str| ImageRef::parse(s).map(|r| r.full());
        // The chart renders `docker.io/postgres:18.4`; versions.yaml pins `docker.io/library/postgres:18.6`.
        assert_eq!(
            full("docker.io/postgres:18.4").unwrap(),
            "docker.io/library/postgres:18.4"
        );
        assert_eq!(full("postgres:18.6").unwrap(), "docker.io/library/postgres:18.6");
        assert_eq!(full("acme/api:1").unwrap(), "docker.io/acme/api:1");
        assert_eq!(full("localhost:5000/api:1").unwrap(), "localhost:5000/api:1");
        let digest = "sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1";
        let r = ImageRef::parse(&format!("registry.k8s.io/ingress-nginx/controller:v1.15.1@{digest}")).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref(), r.name()),
            (
                "registry.k8s.io",
                "ingress-nginx/controller",
                Some("v1.15.1"),
                "controller"
            )
        );
        assert_eq!(r.digest.as_deref(), Some(digest));
        // Nothing that could be read as a flag, a second argument or a different image.
        for bad in [
            "--output=x:1",
            "my app:1",
            "App:1",
            "-x",
            "a//b:1",
            "a:",
            "a:-1",
            "a@sha256:12",
            "",
            "host:port/a:1",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}

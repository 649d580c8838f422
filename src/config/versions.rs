//! versions.yaml: every pin devenv uses.

use super::names;
use super::yaml::at;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_saphyr::Spanned;

pub const FILE: &str = "versions.yaml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsFile {
    pub tools: Tools,
    pub kubernetes: Kubernetes,
    pub components: Components,
    /// Optional in a user's file: the built-in pins apply when it is left out.
    #[serde(default)]
    pub smoke: Option<SmokeImages>,
}

/// The images of the smoke tests.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SmokeImages {
    /// The echo backend behind the run's Ingress: answers the run's token.
    pub echo_image: Spanned<String>,
    /// The in-cluster check's image: needs `sh`, `nslookup` and `nc` (busybox).
    pub probe_image: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tools {
    pub kind: Tool,
    pub helm: Tool,
    pub kubectl: Tool,
    pub minikube: Tool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tool {
    pub version: Spanned<String>,
    pub minimum: Spanned<String>,
    /// Download URL pattern: {version}, {os}, {arch}.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// For a .tar.gz download: the member that is the binary ({os}, {arch} expanded).
    #[serde(default)]
    pub archive_path: Option<String>,
    /// SHA-256 of the download per platform, e.g. `linux-amd64: <64 hex>`.
    #[serde(default)]
    pub sha256: std::collections::BTreeMap<String, Spanned<String>>,
    /// The checksum file the project publishes beside the download ({version}, {os}, {arch}),
    /// read when no sum is pinned; the sum it gives is then kept in versions.lock.
    #[serde(default)]
    pub sha256_url: Option<Spanned<String>>,
}

/// One tool's pins after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPin {
    pub version: String,
    pub minimum: String,
    pub url: Option<String>,
    pub archive_path: Option<String>,
    pub sha256: std::collections::BTreeMap<String, String>,
    pub sha256_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kubernetes {
    pub kind_node_image: Spanned<String>,
    pub minikube_kubernetes: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Components {
    #[serde(rename = "ingress-nginx")]
    pub ingress_nginx: ChartPin,
    pub traefik: ChartPin,
    pub postgresql: ChartPin,
    pub redis: ChartPin,
    /// Optional in a user's file (older files do not have them): the built-in pins apply.
    #[serde(default)]
    pub monitoring: Option<ChartPin>,
    #[serde(default, rename = "metrics-server")]
    pub metrics_server: Option<ChartPin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartPin {
    pub chart: Spanned<String>,
    #[serde(default)]
    pub repository: Option<Spanned<String>>,
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    #[serde(default)]
    pub images: Vec<Spanned<String>>,
}

/// A chart reference after validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chart {
    /// A chart name in `repository`, an `oci://` reference, or a local directory.
    pub chart: String,
    pub repository: Option<String>,
    /// None only for a local chart directory.
    pub version: Option<String>,
    pub images: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Versions {
    /// kind, helm, kubectl, minikube.
    pub tools: std::collections::BTreeMap<String, ToolPin>,
    pub kind_node_image: String,
    pub minikube_kubernetes: String,
    pub ingress_nginx: Chart,
    pub traefik: Chart,
    pub postgresql: Chart,
    pub redis: Chart,
    /// kube-prometheus-stack.
    pub monitoring: Chart,
    pub metrics_server: Chart,
    pub echo_image: String,
    pub probe_image: String,
}

impl VersionsFile {
    pub fn validate(self, file: &str) -> Result<Versions> {
        let tool = |name: &str, t: &Tool| -> Result<ToolPin> {
            for v in [&t.version, &t.minimum] {
                names::exact_version(&v.value).map_err(|m| {
                    Error::config(
                        at(file, v),
                        format!("tools.{name}: {m}"),
                        "pin an exact release, for example 0.33.0",
                    )
                })?;
            }
            if let Some(u) = &t.url {
                let expanded = crate::tools::install::expand(&u.value, &t.version.value);
                if let Err(why) = crate::tools::install::check_url(&expanded) {
                    return Err(Error::config(
                        at(file, u),
                        format!("tools.{name}.url must be https:// (plain http only to this machine): {why}"),
                        "use the project's https download URL",
                    ));
                }
                let archive = [".tar.gz", ".tgz"].iter().any(|x| u.value.ends_with(x));
                if archive && t.archive_path.is_none() {
                    return Err(Error::config(
                        at(file, u),
                        format!(
                            "tools.{name}.url is an archive, and `archivePath` does not say which file in it is {name}"
                        ),
                        "add `archivePath:` with the binary's path inside the archive, e.g. \"{os}-{arch}/helm\"",
                    ));
                }
            }
            let mut sha256 = std::collections::BTreeMap::new();
            for (platform, sum) in &t.sha256 {
                if sum.value.len() != 64 || !sum.value.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(Error::config(
                        at(file, sum),
                        format!("tools.{name}.sha256.{platform} is not a SHA-256 (64 hex digits)"),
                        "copy the sum from the release page's checksum file",
                    ));
                }
                sha256.insert(platform.clone(), sum.value.to_lowercase());
            }
            Ok(ToolPin {
                version: t.version.value.clone(),
                minimum: t.minimum.value.clone(),
                url: t.url.as_ref().map(|u| u.value.clone()),
                archive_path: t.archive_path.clone(),
                sha256,
                sha256_url: t.sha256_url.as_ref().map(|u| u.value.clone()),
            })
        };
        let k = &self.kubernetes;
        names::pinned_by_digest(&k.kind_node_image.value).map_err(|m| {
            Error::config(
                at(file, &k.kind_node_image),
                format!("kubernetes.kindNodeImage: {m}"),
                "copy the image with its @sha256 digest from the kind release notes for your kind version",
            )
        })?;
        names::exact_version(&k.minikube_kubernetes.value).map_err(|m| {
            Error::config(
                at(file, &k.minikube_kubernetes),
                format!("kubernetes.minikubeKubernetes: {m}"),
                "write a Kubernetes version such as v1.35.1",
            )
        })?;
        let c = &self.components;
        let (echo_image, probe_image) = match &self.smoke {
            Some(sm) => {
                for (field, v) in [("echoImage", &sm.echo_image), ("probeImage", &sm.probe_image)] {
                    names::pinned_image(&v.value).map_err(|m| {
                        Error::config(
                            at(file, v),
                            format!("smoke.{field}: {m}"),
                            "pin an exact tag, for example docker.io/library/busybox:1.37.0",
                        )
                    })?;
                }
                (sm.echo_image.value.clone(), sm.probe_image.value.clone())
            }
            None => builtin_smoke_images(),
        };
        Ok(Versions {
            echo_image,
            probe_image,
            tools: [
                ("kind", tool("kind", &self.tools.kind)?),
                ("helm", tool("helm", &self.tools.helm)?),
                ("kubectl", tool("kubectl", &self.tools.kubectl)?),
                ("minikube", tool("minikube", &self.tools.minikube)?),
            ]
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect(),
            kind_node_image: k.kind_node_image.value.clone(),
            minikube_kubernetes: k.minikube_kubernetes.value.clone(),
            ingress_nginx: chart_pin(file, "components.ingress-nginx", &c.ingress_nginx)?,
            traefik: chart_pin(file, "components.traefik", &c.traefik)?,
            postgresql: chart_pin(file, "components.postgresql", &c.postgresql)?,
            redis: chart_pin(file, "components.redis", &c.redis)?,
            monitoring: optional_pin(file, "monitoring", c.monitoring.as_ref())?,
            metrics_server: optional_pin(file, "metrics-server", c.metrics_server.as_ref())?,
        })
    }
}

/// An optional component's pin: the user's, else the one in the built-in versions.yaml.
fn optional_pin(file: &str, name: &str, pin: Option<&ChartPin>) -> Result<Chart> {
    let what = format!("components.{name}");
    match pin {
        Some(p) => chart_pin(file, &what, p),
        None => {
            let text = super::default_text(FILE).expect("versions.yaml is compiled in");
            let builtin: VersionsFile = super::yaml::parse(FILE, text)?;
            let c = builtin.components;
            let p = match name {
                "monitoring" => c.monitoring,
                _ => c.metrics_server,
            };
            chart_pin(
                FILE,
                &what,
                p.as_ref()
                    .expect("the built-in versions.yaml pins every optional component"),
            )
        }
    }
}

/// The smoke images pinned in the built-in versions.yaml.
fn builtin_smoke_images() -> (String, String) {
    let text = super::default_text("versions.yaml").unwrap_or_default();
    let find = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
            .expect("the built-in versions.yaml pins the smoke images")
    };
    (find("echoImage:"), find("probeImage:"))
}

pub fn is_local_chart(chart: &str) -> bool {
    chart.starts_with("./") || chart.starts_with("../") || chart.starts_with('/')
}

/// Validates a chart reference, wherever it is declared (versions.yaml or devenv.yaml releases).
pub fn chart_ref(
    file: &str,
    what: &str,
    chart: &Spanned<String>,
    repository: Option<&Spanned<String>>,
    version: Option<&Spanned<String>>,
) -> Result<Chart> {
    let name = chart.value.trim();
    if name.is_empty() {
        return Err(Error::config(
            at(file, chart),
            format!("{what}.chart is empty"),
            "name the chart, e.g. `postgres` with a repository, or an oci:// reference",
        ));
    }
    let oci = name.starts_with("oci://");
    let local = is_local_chart(name);
    // What helm is given must be what it looks like: a chart name, an oci:// reference or a
    // path, never something helm would read as a flag (`--kube-context=prod`).
    let grammar = if oci {
        reqwest::Url::parse(name)
            .ok()
            .filter(|u| {
                u.host_str().is_some_and(|h| !h.is_empty())
                    && u.username().is_empty()
                    && u.query().is_none()
                    && u.path().len() > 1
                    && !name.chars().any(|c| c.is_whitespace())
            })
            .map(|_| ())
    } else if local {
        Some(())
    } else {
        let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        ok.then_some(())
    };
    if grammar.is_none() {
        return Err(Error::config(
            at(file, chart),
            format!("{what}.chart `{name}` is not a chart name, an oci:// reference or a ./path"),
            "a chart in a repository is named by letters, digits, `-`, `_` and `.` (with `repository:`); an OCI chart is `oci://registry/path`; a local one starts with ./",
        ));
    }
    match (repository, oci || local) {
        (Some(r), true) => {
            return Err(Error::config(
                at(file, r),
                format!("{what}: `repository` cannot be combined with chart `{name}`"),
                "remove `repository`: an oci:// or local chart names its own location",
            ));
        }
        (None, false) => {
            return Err(Error::config(
                at(file, chart),
                format!("{what}: chart `{name}` has no repository"),
                "add `repository: https://…` or write the chart as an oci:// reference",
            ));
        }
        (Some(r), false)
            if !(r.value.starts_with("https://") || r.value.starts_with("http://"))
                || reqwest::Url::parse(&r.value).map_or(true, |u| u.host_str().is_none_or(str::is_empty))
                || r.value.chars().any(char::is_whitespace) =>
        {
            return Err(Error::config(
                at(file, r),
                format!("{what}.repository `{}` is not an http(s) URL", r.value),
                "write the chart repository's URL, e.g. https://groundhog2k.github.io/helm-charts/",
            ));
        }
        _ => {}
    }
    let version = match version {
        Some(v) => {
            names::exact_version(&v.value).map_err(|m| {
                Error::config(
                    at(file, v),
                    format!("{what}.version: {m}"),
                    "pin the chart's exact version, e.g. `version: 1.6.7`",
                )
            })?;
            Some(v.value.clone())
        }
        None if local => None,
        None => {
            return Err(Error::config(
                at(file, chart),
                format!("{what}: chart `{name}` has no version, so every run could install something different"),
                "add `version:` with the exact chart version, e.g. `version: 1.6.7`",
            ));
        }
    };
    Ok(Chart {
        chart: name.to_string(),
        repository: repository.map(|r| r.value.clone()),
        version,
        images: vec![],
    })
}

fn chart_pin(file: &str, what: &str, p: &ChartPin) -> Result<Chart> {
    let mut chart = chart_ref(file, what, &p.chart, p.repository.as_ref(), p.version.as_ref())?;
    for img in &p.images {
        names::pinned_image(&img.value).map_err(|m| {
            Error::config(
                at(file, img),
                format!("{what}.images: {m}"),
                "pin the image to an exact tag (or tag@sha256 digest)",
            )
        })?;
        if img.value.contains("/bitnami/") || img.value.starts_with("bitnami/") {
            return Err(Error::config(
                at(file, img),
                format!(
                    "{what}.images: `{}` is a Bitnami image; Bitnami's versioned images left docker.io/bitnami in 2025 and no longer pull",
                    img.value
                ),
                "use the official image (postgres:18.6, redis:8.10.1) and a chart built on it",
            ));
        }
        chart.images.push(img.value.clone());
    }
    Ok(chart)
}

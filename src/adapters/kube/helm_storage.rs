//! helm's releases read from its own storage (Secrets labelled `owner=helm`) in one request, so
//! that observing needs no `helm` process.

use super::client::{api, block, code};
use crate::error::Result;
use crate::exec::Cancel;
use crate::world::KubeTarget;
use crate::world::ReleaseInfo;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

/// The release helm stored in one of its Secrets (`sh.helm.release.v1.<name>.v<revision>`): the
/// Secret's `release` value is base64 of gzip of the release's JSON.
pub fn release_from_secret(secret: &Secret) -> Option<(u64, ReleaseInfo)> {
    use std::io::Read;
    let labels = secret.metadata.labels.as_ref()?;
    let revision: u64 = labels.get("version")?.parse().ok()?;
    let raw = &secret.data.as_ref()?.get("release")?.0;
    let decoded = crate::probe::scram::b64decode(std::str::from_utf8(raw).ok()?.trim())?;
    let mut json = Vec::new();
    if decoded.starts_with(&[0x1f, 0x8b]) {
        // Bounded: a release is at most a few MiB; a hostile Secret cannot inflate without end.
        flate2::read::GzDecoder::new(&decoded[..])
            .take(32 << 20)
            .read_to_end(&mut json)
            .ok()?;
    } else {
        json = decoded;
    }
    let r: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let chart = format!(
        "{}-{}",
        r.pointer("/chart/metadata/name")?.as_str()?,
        r.pointer("/chart/metadata/version")?.as_str()?
    );
    Some((
        revision,
        ReleaseInfo {
            name: r["name"]
                .as_str()
                .or(labels.get("name").map(String::as_str))?
                .to_string(),
            namespace: r["namespace"]
                .as_str()
                .or(secret.metadata.namespace.as_deref())?
                .to_string(),
            status: r
                .pointer("/info/status")
                .and_then(|s| s.as_str())
                .or(labels.get("status").map(String::as_str))?
                .to_string(),
            chart,
        },
    ))
}

/// Each release at its latest revision from its Secrets' metadata alone: helm labels them with
/// `name`, `status` and `version` (the revision); the chart is left empty.
pub fn releases_from_labels<'a>(
    metas: impl Iterator<Item = &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
) -> Vec<ReleaseInfo> {
    let mut latest: std::collections::BTreeMap<(String, String), (u64, ReleaseInfo)> = Default::default();
    for m in metas.filter(|m| m.name.as_deref().is_some_and(|n| n.starts_with("sh.helm.release.v1."))) {
        let labels = m.labels.clone().unwrap_or_default();
        let (Some(name), Some(status), Some(rev), Some(ns)) = (
            labels.get("name"),
            labels.get("status"),
            labels.get("version").and_then(|v| v.parse::<u64>().ok()),
            m.namespace.as_ref(),
        ) else {
            continue;
        };
        let key = (ns.clone(), name.clone());
        if latest.get(&key).is_none_or(|(have, _)| *have < rev) {
            let info = ReleaseInfo {
                name: name.clone(),
                namespace: ns.clone(),
                status: status.clone(),
                chart: String::new(),
            };
            latest.insert(key, (rev, info));
        }
    }
    latest.into_values().map(|(_, r)| r).collect()
}

/// Each release at its latest revision, as `helm list --all` has them.
pub fn releases_from_secrets(secrets: &[Secret]) -> Vec<ReleaseInfo> {
    let mut latest: std::collections::BTreeMap<(String, String), (u64, ReleaseInfo)> = Default::default();
    for s in secrets
        .iter()
        .filter(|s| s.type_.as_deref() == Some("helm.sh/release.v1"))
    {
        if let Some((rev, r)) = release_from_secret(s) {
            let key = (r.namespace.clone(), r.name.clone());
            if latest.get(&key).is_none_or(|(have, _)| *have < rev) {
                latest.insert(key, (rev, r));
            }
        }
    }
    latest.into_values().map(|(_, r)| r).collect()
}

pub fn helm_releases(
    t: &KubeTarget,
    driver: Option<&str>,
    charts: bool,
    cancel: &Cancel,
) -> Result<Option<Vec<ReleaseInfo>>> {
    // helm keeps releases in Secrets unless HELM_DRIVER says otherwise.
    if driver.is_some_and(|d| !d.is_empty() && d != "secret" && d != "secrets") {
        return Ok(None);
    }
    block(t, cancel, |client| async move {
        let lp = ListParams::default().labels("owner=helm,status!=superseded");
        let secrets = Api::<Secret>::all(client);
        let listed = if charts {
            secrets.list(&lp).await.map(|l| releases_from_secrets(&l.items))
        } else {
            secrets
                .list_metadata(&lp)
                .await
                .map(|l| releases_from_labels(l.items.iter().map(|m| &m.metadata)))
        };
        match listed {
            Ok(releases) => Ok(Some(releases)),
            // Not allowed to read Secrets cluster-wide: `helm list` may still be.
            Err(e) if matches!(code(&e), Some(401 | 403)) => Ok(None),
            Err(e) => Err(api("reading helm's releases", t)(e)),
        }
    })
}

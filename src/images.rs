//! Loading local images into a kind cluster's nodes: check each node by image ID, retag where
//! only the tag is missing, export only what is missing (only the node's platform when Docker
//! uses the containerd image store), stream it into `ctr import` on every node at once, then
//! verify on each node. Policy only: the engine's image API is the `ImageTransport` trait.

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::world::{
    CLUSTER_LABEL, ContainerEngine, ImageTransport, LoadOutcome as Outcome, LoadReport as Report, LocalImage,
};
use std::collections::BTreeMap;

/// What containerd in a node calls an image: `myapp:dev` is `docker.io/library/myapp:dev`.
pub fn normalize(name: &str) -> String {
    match crate::config::names::ImageRef::parse(name) {
        Ok(mut r) => {
            if r.tag.is_none() && r.digest.is_none() {
                r.tag = Some("latest".into());
            }
            r.full()
        }
        // Not a reference (validation refuses these before any load): left as it is.
        Err(_) => name.to_string(),
    }
}

/// `crictl inspecti --output json REF` -> (id, tags), or None when the node lacks it.
pub fn node_image(
    t: &dyn ImageTransport,
    node: &str,
    reference: &str,
    cancel: &Cancel,
) -> Result<Option<(String, Vec<String>)>> {
    let out = t.exec(
        node,
        &[
            "crictl".into(),
            "inspecti".into(),
            "--output".into(),
            "json".into(),
            reference.into(),
        ],
        cancel,
    )?;
    if out.code != 0 {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| {
        Error::failed(
            format!("node {node}: `crictl inspecti` printed something that is not JSON ({e})"),
            "is this a kind node? `docker exec NODE crictl images` should work",
        )
    })?;
    let id = v
        .pointer("/status/id")
        .and_then(|i| i.as_str())
        .unwrap_or_default()
        .to_string();
    let tags = v
        .pointer("/status/repoTags")
        .and_then(|t| t.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default();
    Ok(Some((id, tags)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Need {
    Present,
    /// The node has the same image under another name: tag it.
    Retag(String),
    Missing,
}

fn assess(t: &dyn ImageTransport, node: &str, img: &LocalImage, cancel: &Cancel) -> Result<Need> {
    let name = normalize(&img.name);
    if let Some((id, _)) = node_image(t, node, &name, cancel)?
        && id == img.id
    {
        return Ok(Need::Present);
    }
    match node_image(t, node, &img.id, cancel)? {
        Some((id, tags)) if id == img.id && !tags.is_empty() => Ok(Need::Retag(tags[0].clone())),
        _ => Ok(Need::Missing),
    }
}

fn running_nodes(engine: &dyn ContainerEngine, cluster: &str, cancel: &Cancel) -> Result<Vec<String>> {
    let nodes = engine.containers_labelled(CLUSTER_LABEL, cluster, cancel)?;
    if let Some(n) = nodes.iter().find(|n| !n.running) {
        return Err(Error::failed(
            format!("node {} of cluster `{cluster}` is not running", n.name),
            "`devenv up` starts it",
        ));
    }
    if nodes.is_empty() {
        return Err(Error::failed(
            format!("cluster `{cluster}` has no nodes"),
            "run `devenv up` first",
        ));
    }
    Ok(nodes.into_iter().map(|n| n.name).collect())
}

fn local(t: &dyn ImageTransport, name: &str, cancel: &Cancel) -> Result<LocalImage> {
    t.local_image(name, cancel)?.ok_or_else(|| {
        Error::prerequisite(
            format!("image `{name}` is not on this machine"),
            format!("build it (`docker build -t {name} .`) or pull it (`docker pull {name}`), then load again"),
        )
    })
}

/// The Go/OCI name of an engine's architecture (`x86_64` is `amd64`).
pub fn arch(engine_arch: &str) -> &str {
    match engine_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" => "arm",
        other => other,
    }
}

/// Of `images` (by reference, whether or not this machine has them), the ones some running
/// node of the cluster lacks.
pub fn missing_on_nodes(
    engine: &dyn ContainerEngine,
    t: &dyn ImageTransport,
    cluster: &str,
    images: &[String],
    cancel: &Cancel,
) -> Result<Vec<String>> {
    let nodes = running_nodes(engine, cluster, cancel)?;
    let mut out = Vec::new();
    for name in images {
        for node in &nodes {
            if node_image(t, node, &normalize(name), cancel)?.is_none() {
                out.push(name.clone());
                break;
            }
        }
    }
    Ok(out)
}

/// The images not yet on every node (read-only; for the plan).
pub fn missing(
    engine: &dyn ContainerEngine,
    t: &dyn ImageTransport,
    cluster: &str,
    images: &[String],
    cancel: &Cancel,
) -> Result<Vec<String>> {
    let nodes = running_nodes(engine, cluster, cancel)?;
    let mut out = Vec::new();
    for name in images {
        let Some(img) = t.local_image(name, cancel)? else {
            out.push(name.clone());
            continue;
        };
        for node in &nodes {
            if assess(t, node, &img, cancel)? != Need::Present {
                out.push(name.clone());
                break;
            }
        }
    }
    Ok(out)
}

/// The import command kind runs in a node. With a single-platform archive `--all-platforms`
/// would fail on the platforms it lacks ("content digest … not found").
/// What to do about a failed import, from what the node's containerd said.
fn import_help(printed: &str) -> &'static str {
    if printed.contains("no space left on device") {
        "the node's disk is full: a kind node keeps its images in Docker's storage on this machine; free space there (`docker system df` shows it, `docker image prune` frees it) and run the command again"
    } else if printed.contains("content digest") && printed.contains("not found") {
        "the image is multi-platform and Docker uses the containerd image store, so `docker save` holds only this machine's platform: `devenv doctor` says so"
    } else {
        "`devenv doctor` checks the node and the engine"
    }
}

pub fn import_argv(all_platforms: bool) -> Vec<String> {
    let mut a: Vec<String> = ["ctr", "--namespace=k8s.io", "images", "import"]
        .map(String::from)
        .to_vec();
    if all_platforms {
        a.push("--all-platforms".into());
    }
    a.extend(["--digests", "--snapshotter=overlayfs", "-"].map(String::from));
    a
}

/// Loads `images` into every node of `cluster`.
pub fn load(
    engine: &dyn ContainerEngine,
    t: &dyn ImageTransport,
    cluster: &str,
    images: &[String],
    containerd_store: bool,
    progress: &(dyn Fn(&str, u64) + Sync),
    cancel: &Cancel,
) -> Result<Report> {
    let nodes = running_nodes(engine, cluster, cancel)?;
    let locals: Vec<LocalImage> = images.iter().map(|n| local(t, n, cancel)).collect::<Result<_>>()?;
    // Per node: what it lacks, and what it has under another name.
    let mut lacking: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut retagged: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for node in &nodes {
        for (i, img) in locals.iter().enumerate() {
            match assess(t, node, img, cancel)? {
                Need::Present => {}
                Need::Retag(from) => {
                    let argv: Vec<String> = [
                        "ctr",
                        "--namespace=k8s.io",
                        "images",
                        "tag",
                        "--force",
                        &from,
                        &normalize(&img.name),
                    ]
                    .map(String::from)
                    .to_vec();
                    let out = t.exec(node, &argv, cancel)?;
                    if out.code != 0 {
                        return Err(Error::failed(
                            format!("node {node}: `{}` failed: {}", argv.join(" "), out.stderr.trim()),
                            "",
                        ));
                    }
                    retagged.entry(i).or_default().push(node.clone());
                }
                Need::Missing => lacking.entry(node.clone()).or_default().push(i),
            }
        }
    }
    // Nodes that lack the same images get one export, streamed to all of them at once.
    let mut groups: BTreeMap<Vec<usize>, Vec<String>> = BTreeMap::new();
    for (node, set) in lacking {
        groups.entry(set).or_default().push(node);
    }
    let mut sent: BTreeMap<usize, (Vec<String>, u64)> = BTreeMap::new();
    let mut total = 0;
    for (set, group) in &groups {
        let names: Vec<String> = set.iter().map(|i| locals[*i].name.clone()).collect();
        let platform = containerd_store.then(|| locals[set[0]].platform.clone());
        let deliveries = t.stream_into(
            &names,
            platform.as_deref(),
            group,
            &import_argv(platform.is_none()),
            progress,
            cancel,
        )?;
        for d in deliveries {
            let out = d.result.map_err(|e| match e {
                Error::Interrupted(s) => Error::Interrupted(s),
                other => Error::failed(
                    format!("node {}: loading {} failed: {other}", d.node, names.join(", ")),
                    "`devenv doctor` checks the node and the engine",
                ),
            })?;
            if out.code != 0 {
                let printed = format!("{}\n{}", out.stdout, out.stderr);
                return Err(Error::failed(
                    format!(
                        "node {}: loading {} failed: {}\n  `{}` exited with status {}:\n{}",
                        d.node,
                        names.join(", "),
                        crate::process::cause(&out.stderr).unwrap_or_default(),
                        import_argv(platform.is_none()).join(" "),
                        out.code,
                        crate::process::tail(&printed, 8)
                    ),
                    import_help(&printed),
                ));
            }
            total += d.bytes;
            for i in set {
                let e = sent.entry(*i).or_default();
                e.0.push(d.node.clone());
                e.1 += d.bytes / set.len() as u64;
            }
        }
    }
    // Verify on the nodes: the image is there, under its name, with the host's ID.
    for (i, (loaded, _)) in &sent {
        for node in loaded {
            if assess(t, node, &locals[*i], cancel)? != Need::Present {
                return Err(Error::failed(
                    format!(
                        "node {node}: `{}` is not there after the import (by ID {})",
                        locals[*i].name, locals[*i].id
                    ),
                    "check the node's containerd: `docker exec NODE crictl images`",
                ));
            }
        }
    }
    let images = locals
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let r = retagged.get(&i).cloned().unwrap_or_default();
            let outcome = match sent.get(&i) {
                None if r.is_empty() => Outcome::AlreadyOnAll { nodes: nodes.len() },
                None => Outcome::Loaded {
                    nodes: vec![],
                    retagged: r,
                    bytes: 0,
                },
                Some((n, b)) => Outcome::Loaded {
                    nodes: n.clone(),
                    retagged: r,
                    bytes: *b,
                },
            };
            (img.name.clone(), outcome)
        })
        .collect();
    Ok(Report { images, bytes: total })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn names_are_normalized_as_containerd_does() {
        assert_eq!(normalize("myapp:dev"), "docker.io/library/myapp:dev");
        assert_eq!(normalize("myapp"), "docker.io/library/myapp:latest");
        assert_eq!(normalize("acme/api:1.2"), "docker.io/acme/api:1.2");
        assert_eq!(normalize("ghcr.io/acme/api:1.2"), "ghcr.io/acme/api:1.2");
        assert_eq!(normalize("localhost:5000/api:1"), "localhost:5000/api:1");
    }
}

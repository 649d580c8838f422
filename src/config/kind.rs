//! kind-config.yaml: kind's own v1alpha4 cluster format, checked field by field so that a typo
//! is reported here, with its line, instead of by kind halfway through "Preparing nodes".

use super::names;
use super::yaml::at;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

pub const FILE: &str = "kind-config.yaml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindConfig {
    pub kind: Spanned<String>,
    pub api_version: Spanned<String>,
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub nodes: Option<Spanned<Vec<Node>>>,
    #[serde(default)]
    pub networking: Option<Networking>,
    #[serde(default)]
    pub feature_gates: Option<BTreeMap<String, bool>>,
    #[serde(default)]
    pub runtime_config: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub kubeadm_config_patches: Option<Vec<String>>,
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub containerd_config_patches: Option<Vec<String>>,
    #[serde(default, rename = "containerdConfigPatchesJSON6902")]
    pub containerd_config_patches_json6902: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Node {
    pub role: Spanned<Role>,
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub extra_mounts: Option<Vec<Mount>>,
    #[serde(default)]
    pub extra_port_mappings: Option<Vec<PortMapping>>,
    #[serde(default)]
    pub kubeadm_config_patches: Option<Vec<String>>,
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub selinux_relabel: Option<bool>,
    #[serde(default)]
    pub propagation: Option<Propagation>,
}

#[derive(Deserialize)]
pub enum Propagation {
    None,
    HostToContainer,
    Bidirectional,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub enum Protocol {
    #[default]
    TCP,
    UDP,
    SCTP,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortMapping {
    pub container_port: Spanned<super::yaml::Number>,
    #[serde(default)]
    pub host_port: Option<Spanned<super::yaml::Number>>,
    #[serde(default)]
    pub listen_address: Option<Spanned<String>>,
    #[serde(default)]
    pub protocol: Option<Protocol>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Networking {
    #[serde(default)]
    pub ip_family: Option<IpFamily>,
    #[serde(default)]
    pub api_server_address: Option<String>,
    #[serde(default)]
    pub api_server_port: Option<i32>,
    #[serde(default)]
    pub pod_subnet: Option<String>,
    #[serde(default)]
    pub service_subnet: Option<String>,
    #[serde(default, rename = "disableDefaultCNI")]
    pub disable_default_cni: Option<bool>,
    #[serde(default)]
    pub kube_proxy_mode: Option<KubeProxyMode>,
    #[serde(default)]
    pub dns_search: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    Ipv4,
    Ipv6,
    Dual,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeProxyMode {
    Iptables,
    Ipvs,
    Nftables,
    None,
}

/// One host mapping after validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostMapping {
    pub node: usize,
    pub container_port: u16,
    pub host_port: u16,
    pub listen_address: String,
    pub protocol: Protocol,
    /// Where the mapping stands in the file.
    pub line: u64,
    /// The host port is the environment's own, chosen when its cluster was created (not the
    /// file's).
    pub chosen: bool,
}

/// What devenv needs to know of kind-config.yaml after validation.
#[derive(Debug, Clone)]
pub struct KindSummary {
    pub control_planes: usize,
    pub workers: usize,
    pub mappings: Vec<HostMapping>,
    /// Where `nodes:` stands, for errors about the file as a whole.
    pub nodes_line: u64,
}

impl KindConfig {
    /// A user's file may not mount anything where devenv mounts its own directories: devenv's
    /// mount would replace it without a word.
    pub fn check_reserved_mounts(&self, file: &str) -> Result<()> {
        for (i, node) in self.nodes.iter().flat_map(|n| n.value.iter()).enumerate() {
            for mount in node.extra_mounts.iter().flatten() {
                let inside = mount.container_path.trim_end_matches('/');
                if [DATA_MOUNT, SHARED_MOUNT].contains(&inside) {
                    return Err(Error::config(
                        at(file, &node.role),
                        format!(
                            "nodes[{i}].extraMounts: {inside} is where devenv mounts its own data directory, so a mount of yours there would be replaced"
                        ),
                        "mount your directory at another containerPath",
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn validate(&self, file: &str, env_name: &str) -> Result<KindSummary> {
        if self.kind.value != "Cluster" {
            return Err(Error::config(
                at(file, &self.kind),
                format!("kind: `{}` is not a kind cluster config", self.kind.value),
                "write `kind: Cluster`",
            ));
        }
        if self.api_version.value != "kind.x-k8s.io/v1alpha4" {
            return Err(Error::config(
                at(file, &self.api_version),
                format!("apiVersion `{}` is not supported", self.api_version.value),
                "write `apiVersion: kind.x-k8s.io/v1alpha4` (the only version current kind reads)",
            ));
        }
        if let Some(n) = &self.name
            && n.value != env_name
        {
            return Err(Error::config(
                at(file, n),
                format!("name `{}` differs from the environment name `{env_name}`", n.value),
                "remove `name:` from kind-config.yaml; devenv names the cluster after the environment (-n/--name or devenv.yaml `name`)",
            ));
        }
        let mut summary = KindSummary {
            control_planes: 0,
            workers: 0,
            mappings: vec![],
            nodes_line: 1,
        };
        let empty = Vec::new();
        let nodes = match &self.nodes {
            Some(n) => {
                summary.nodes_line = n.referenced.line();
                &n.value
            }
            None => &empty,
        };
        for (i, node) in nodes.iter().enumerate() {
            match node.role.value {
                Role::ControlPlane => summary.control_planes += 1,
                Role::Worker => summary.workers += 1,
            }
            if let Some(img) = &node.image {
                names::pinned_by_digest(&img.value).map_err(|m| {
                    Error::config(
                        at(file, img),
                        format!("nodes[{i}].image: {m}"),
                        "remove `image:` to use the pinned node image from versions.yaml, or pin this one by digest",
                    )
                })?;
            }
            for m in node.extra_port_mappings.iter().flatten() {
                let container_port = super::yaml::port(
                    file,
                    &m.container_port,
                    &format!("nodes[{i}].extraPortMappings: containerPort"),
                    1..=65535,
                    "write the node's port (a NodePort from devenv.yaml's nodePorts) as a whole number",
                )?;
                let Some(host) = &m.host_port else { continue };
                if matches!(host.value, super::yaml::Number::Whole(0)) {
                    return Err(Error::config(
                        at(file, host),
                        "hostPort 0 lets Docker pick a port when the cluster is created, which `devenv env` and the smoke tests could not know",
                        "choose a free port (`devenv doctor` checks that it is free)",
                    ));
                }
                let host_port = super::yaml::port(
                    file,
                    host,
                    &format!("nodes[{i}].extraPortMappings: hostPort"),
                    1..=65535,
                    "a port on this machine is a whole number from 1 to 65535 (`devenv doctor` checks that it is free)",
                )?;
                let listen = m
                    .listen_address
                    .as_ref()
                    .map(|l| l.value.clone())
                    .unwrap_or_else(|| "0.0.0.0".into());
                if let Some(l) = &m.listen_address
                    && l.value.parse::<std::net::IpAddr>().is_err()
                {
                    return Err(Error::config(
                        at(file, l),
                        format!("listenAddress `{}` is not an IP address", l.value),
                        "write 127.0.0.1 to reach the port from this machine only",
                    ));
                }
                let protocol = m.protocol.unwrap_or_default();
                if let Some(prev) = summary.mappings.iter().find(|p| {
                    p.host_port == host_port
                        && p.protocol == protocol
                        && (p.listen_address == listen || p.listen_address == "0.0.0.0" || listen == "0.0.0.0")
                }) {
                    return Err(Error::config(
                        at(file, host),
                        format!("hostPort {host_port} is already mapped on line {}", prev.line),
                        "give each mapping its own host port",
                    ));
                }
                summary.mappings.push(HostMapping {
                    node: i,
                    container_port,
                    host_port,
                    listen_address: listen,
                    protocol,
                    line: host.referenced.line(),
                    chosen: false,
                });
            }
        }
        if summary.control_planes == 0 && !nodes.is_empty() {
            return Err(Error::config(
                crate::error::Location {
                    file: file.into(),
                    line: summary.nodes_line,
                    column: 1,
                },
                "nodes: there is no control-plane node",
                "add `- role: control-plane` as the first node",
            ));
        }
        if nodes.is_empty() {
            summary.control_planes = 1;
        }
        Ok(summary)
    }
}

/// Where every node sees a `sharedData.path` of the user's.
pub const SHARED_MOUNT: &str = "/devenv-shared";

/// Where every node sees the persistent data directory.
pub const DATA_MOUNT: &str = "/devenv-data";

/// The kind config devenv hands to kind: the user's, with each `(host dir, node path)` mounted in
/// every node (extraMounts are fixed at creation). Written as JSON, which kind reads as YAML.
pub fn with_mounts(text: &str, wanted: &[(std::path::PathBuf, &str)]) -> Result<String> {
    let mut v: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
        Error::failed(
            format!("{FILE}: cannot add the data mount: {e}"),
            "check the file with `devenv plan`",
        )
    })?;
    if v.get("nodes").and_then(|n| n.as_array()).is_none_or(|n| n.is_empty()) {
        v["nodes"] = serde_json::json!([{"role": "control-plane"}]);
    }
    for node in v["nodes"].as_array_mut().into_iter().flatten() {
        let mounts = node
            .as_object_mut()
            .map(|n| n.entry("extraMounts").or_insert_with(|| serde_json::json!([])));
        if let Some(serde_json::Value::Array(m)) = mounts {
            for (host_dir, node_path) in wanted {
                m.retain(|x| x["containerPath"] != *node_path);
                m.push(serde_json::json!({"hostPath": host_dir.display().to_string(), "containerPath": node_path}));
            }
        }
    }
    Ok(serde_json::to_string_pretty(&v).expect("JSON serializes"))
}

/// The kind config with each mapping's `hostPort` replaced as `ports` says (old -> new).
pub fn with_host_ports(text: &str, ports: &std::collections::BTreeMap<u16, u16>) -> Result<String> {
    if ports.is_empty() {
        return Ok(text.to_string());
    }
    let mut v: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
        Error::failed(
            format!("{FILE}: cannot give the environment its own ports: {e}"),
            "check the file with `devenv plan`",
        )
    })?;
    for node in v["nodes"].as_array_mut().into_iter().flatten() {
        for m in node["extraPortMappings"].as_array_mut().into_iter().flatten() {
            if let Some(new) = m["hostPort"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .and_then(|p| ports.get(&p))
            {
                m["hostPort"] = (*new).into();
            }
        }
    }
    Ok(serde_json::to_string_pretty(&v).expect("JSON serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_data_mount(text: &str, dir: &std::path::Path) -> Result<String> {
        with_mounts(text, &[(dir.to_path_buf(), DATA_MOUNT)])
    }

    #[test]
    fn the_data_mount_is_added_to_every_node_and_the_result_is_still_valid_v1alpha4() {
        let text = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n# a comment\nnodes:\n  - role: control-plane\n    extraPortMappings:\n      - containerPort: 30080\n        hostPort: 80\n  - role: worker\n    extraMounts:\n      - hostPath: /src\n        containerPath: /src\n";
        let out = with_data_mount(text, std::path::Path::new("/home/dev/.local/state/devenv/dev/data")).unwrap();
        // kind's own schema, as devenv checks it, accepts the result.
        let parsed = crate::config::yaml::parse::<KindConfig>("generated", &out).unwrap();
        parsed.validate("generated", "dev").unwrap();
        let nodes = parsed.nodes.unwrap().value;
        assert_eq!(nodes.len(), 2);
        for n in &nodes {
            let m = n.extra_mounts.as_ref().unwrap();
            let data: Vec<&Mount> = m.iter().filter(|m| m.container_path == DATA_MOUNT).collect();
            assert_eq!(data.len(), 1);
            assert_eq!(data[0].host_path, "/home/dev/.local/state/devenv/dev/data");
        }
        assert_eq!(
            nodes[1].extra_mounts.as_ref().unwrap()[0].host_path,
            "/src",
            "the user's mounts stay"
        );
        assert!(out.contains("\"hostPort\": 80"));
        // A config with no nodes gets kind's default single control-plane node, with the mount.
        let bare = with_data_mount(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n",
            std::path::Path::new("/d"),
        )
        .unwrap();
        assert!(bare.contains("\"role\": \"control-plane\"") && bare.contains("\"containerPath\": \"/devenv-data\""));
        // Applying it twice does not mount twice.
        let twice = with_data_mount(&out, std::path::Path::new("/home/dev/.local/state/devenv/dev/data")).unwrap();
        assert_eq!(twice.matches("/devenv-data").count(), 2);
    }

    #[test]
    fn the_data_and_shared_mounts_use_only_kind_v1alpha4_mount_fields_on_every_node() {
        let text = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n  - role: worker\n  - role: worker\n";
        let out = with_mounts(
            text,
            &[
                (std::path::PathBuf::from("/state/dev/data"), DATA_MOUNT),
                (std::path::PathBuf::from("/home/dev/project/shared"), "/devenv-shared"),
            ],
        )
        .unwrap();
        // `Mount` refuses any field kind's v1alpha4 Mount does not have (deny_unknown_fields).
        let parsed = crate::config::yaml::parse::<KindConfig>("generated", &out).unwrap();
        parsed.validate("generated", "dev").unwrap();
        let nodes = parsed.nodes.unwrap().value;
        assert_eq!(nodes.len(), 3);
        for n in &nodes {
            let m: Vec<(&str, &str)> = n
                .extra_mounts
                .as_ref()
                .unwrap()
                .iter()
                .map(|m| (m.host_path.as_str(), m.container_path.as_str()))
                .collect();
            assert_eq!(
                m,
                vec![
                    ("/state/dev/data", "/devenv-data"),
                    ("/home/dev/project/shared", "/devenv-shared")
                ]
            );
        }
        // Each generated mount has exactly kind's two required fields, spelt as kind spells them.
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        for m in v["nodes"][0]["extraMounts"].as_array().unwrap() {
            let mut keys: Vec<&String> = m.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(keys, ["containerPath", "hostPath"]);
        }
    }
}

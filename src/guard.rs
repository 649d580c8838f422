//! Never the wrong cluster: with `--driver existing`, devenv decides from the context's API server
//! URL, before any connection, whether the cluster is on this machine. A context's name decides
//! nothing (`kind-prod` can point anywhere). Pure: the caller gives the addresses it found.

use std::net::IpAddr;

/// Why a server is, or is not, on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locality {
    Local(String),
    Remote(String),
}

/// The server URL of `context` in a kubeconfig (`kubectl config view --minify --flatten` output).
pub fn server_of(kubeconfig: &str, context: &str) -> Option<String> {
    let v: serde_json::Value = serde_saphyr::from_str(kubeconfig).ok()?;
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let cluster = list("contexts")
        .into_iter()
        .find(|c| c["name"] == context)?
        .pointer("/context/cluster")?
        .as_str()?
        .to_string();
    list("clusters")
        .into_iter()
        .find(|c| c["name"] == cluster.as_str())?
        .pointer("/cluster/server")?
        .as_str()
        .map(String::from)
}

/// Whether `server` (an https URL) is on this machine: a loopback or unspecified address (kind,
/// minikube with the docker driver on macOS, k3d, Docker Desktop's `kubernetes.docker.internal`
/// as it resolves), one of this machine's own addresses (a port the engine publishes), or the
/// address of a container the engine runs (minikube's node on Linux). `resolve` turns a host name
/// into addresses; `containers` is asked only when nothing else decided.
pub fn locality(
    server: &str,
    own: &[IpAddr],
    resolve: impl Fn(&str, u16) -> Vec<IpAddr>,
    containers: impl FnOnce() -> Vec<IpAddr>,
) -> Locality {
    let Ok(url) = reqwest::Url::parse(server) else {
        return Locality::Remote(format!("`{server}` is not a URL"));
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(a)) => vec![IpAddr::V4(a)],
        Some(url::Host::Ipv6(a)) => vec![IpAddr::V6(a)],
        Some(url::Host::Domain(d)) => {
            let found = resolve(d, port);
            if found.is_empty() {
                return Locality::Remote(format!("{d} does not resolve"));
            }
            found
        }
        None => return Locality::Remote(format!("`{server}` names no host")),
    };
    if addrs.iter().all(|a| a.is_loopback() || a.is_unspecified()) {
        return Locality::Local(format!("{server} is this machine's loopback"));
    }
    if addrs.iter().all(|a| own.contains(a)) {
        return Locality::Local(format!("{server} is an address of this machine"));
    }
    let containers = containers();
    if addrs.iter().all(|a| containers.contains(a)) {
        return Locality::Local(format!("{server} is a container the engine runs here"));
    }
    Locality::Remote(format!(
        "{server} is neither this machine nor a container its engine runs"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_server_url_decides_and_never_the_context_name() {
        let none = |_: &str, _: u16| vec![];
        let local = |s: &str| locality(s, &[ip("192.168.1.20")], none, Vec::new);
        assert!(matches!(local("https://127.0.0.1:6443"), Locality::Local(_)));
        assert!(matches!(local("https://[::1]:6443"), Locality::Local(_)));
        assert!(matches!(local("https://0.0.0.0:33445"), Locality::Local(_)));
        assert!(matches!(local("https://192.168.1.20:32768"), Locality::Local(_)));
        // kind-dev whose server is on another host: remote, whatever the name says.
        assert!(matches!(local("https://10.1.2.3:6443"), Locality::Remote(_)));
        assert!(matches!(local("not a url"), Locality::Remote(_)));
        // A name is what it resolves to.
        let hosts = |h: &str, _: u16| match h {
            "kubernetes.docker.internal" => vec![ip("127.0.0.1")],
            "prod.example.com" => vec![ip("203.0.113.7")],
            _ => vec![],
        };
        let by_name = |s: &str| locality(s, &[], hosts, Vec::new);
        assert!(matches!(
            by_name("https://kubernetes.docker.internal:6443"),
            Locality::Local(_)
        ));
        assert!(matches!(by_name("https://prod.example.com"), Locality::Remote(_)));
        assert!(matches!(by_name("https://nowhere.invalid"), Locality::Remote(_)));
        // minikube's node container on the engine's network.
        let minikube = locality("https://192.168.49.2:8443", &[], none, || vec![ip("192.168.49.2")]);
        assert!(matches!(minikube, Locality::Local(_)));
    }

    #[test]
    fn the_server_is_read_from_the_named_context() {
        let kc = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://10.1.2.3:6443\n  name: prod\n- cluster:\n    server: https://127.0.0.1:40111\n  name: kind-dev\ncontexts:\n- context:\n    cluster: prod\n    user: u\n  name: kind-dev\nusers: []\n";
        assert_eq!(server_of(kc, "kind-dev").as_deref(), Some("https://10.1.2.3:6443"));
        assert_eq!(server_of(kc, "other"), None);
    }
}

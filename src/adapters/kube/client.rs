//! A client for exactly one kubeconfig file and context (never the user's current context), the
//! runtime its requests run on, and the API's errors in devenv's words.

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::world::KubeTarget;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::future::Future;
use std::time::Duration;

/// How often a wait looks again.
pub(super) const POLL: Duration = Duration::from_millis(1000);

/// The one runtime every API call of the process runs on: the clients' connections (and their
/// TLS sessions) live on it from one call to the next. Steps call from their own threads at once,
/// which a multi-thread runtime allows.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: std::sync::OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("devenv-kube")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::failed(format!("cannot start an async runtime: {e}"), ""))
}

/// One client per target for the whole process, so that a command opens one connection (and
/// does one TLS handshake) per cluster, not one per call. Keyed by the kubeconfig's content as
/// well: a cluster made again (a new port, new certificates) gets a new client.
async fn client(t: &KubeTarget) -> Result<Client> {
    type Key = (std::path::PathBuf, String, u64);
    static CLIENTS: std::sync::Mutex<Vec<(Key, Client)>> = std::sync::Mutex::new(Vec::new());
    let text = std::fs::read(&t.kubeconfig).unwrap_or_default();
    let key: Key = (t.kubeconfig.clone(), t.context.clone(), {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        h.finish()
    });
    if let Some((_, c)) = CLIENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(k, _)| *k == key)
    {
        return Ok(c.clone());
    }
    let c = connect(t).await?;
    let mut clients = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    clients.retain(|(k, _)| (&k.0, &k.1) != (&key.0, &key.1));
    clients.push((key, c.clone()));
    Ok(c)
}

/// Runs `f` with the client for `t` on the shared runtime; a cancelled run stops it within 50 ms.
pub(super) fn block<T, F, Fut>(t: &KubeTarget, cancel: &Cancel, f: F) -> Result<T>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    runtime()?.block_on(cancel.race(async { f(client(t).await?).await }))
}

/// A client for exactly this kubeconfig file and context, never the user's current context.
pub async fn connect(t: &KubeTarget) -> Result<Client> {
    let bad = |e: String| {
        Error::failed(
            format!("{}: {e}", t.kubeconfig.display()),
            "this is the environment's kubeconfig: delete it and run `devenv up` to write it again",
        )
    };
    let kc = Kubeconfig::read_from(&t.kubeconfig).map_err(|e| bad(format!("not a usable kubeconfig ({e})")))?;
    let options = KubeConfigOptions {
        context: Some(t.context.clone()),
        ..Default::default()
    };
    let mut config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| bad(format!("context `{}` cannot be used ({e})", t.context)))?;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|e| bad(format!("cannot build an API client ({e})")))
}

/// The API's error, naming what devenv asked for.
pub(super) fn api(what: &str, t: &KubeTarget) -> impl Fn(kube::Error) -> Error + use<> {
    let (what, context) = (what.to_string(), t.context.clone());
    move |e| {
        let detail = match &e {
            kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
            other => other.to_string(),
        };
        Error::failed(
            format!("{what} (context {context}): {detail}"),
            "is the cluster running? `devenv status` says; `devenv doctor` checks Docker",
        )
    }
}

pub(super) fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The ingress controller's admission webhook is not answering yet (ingress-nginx#5401).
pub fn is_webhook_race(e: &kube::Error) -> bool {
    let text = match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    };
    text.contains("failed calling webhook") || text.contains("no endpoints available for service")
}

pub fn server_version(t: &KubeTarget, cancel: &Cancel) -> Result<String> {
    block(t, cancel, |client| async move {
        Ok(client
            .apiserver_version()
            .await
            .map_err(api("asking the API server its version", t))?
            .git_version)
    })
}

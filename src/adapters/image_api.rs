//! The engine's image API through bollard: inspect, exec in a node, and one export streamed into
//! `ctr import` in several nodes at once, without a temporary file.

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::world::{Delivery, ExecOutput, ImageTransport, LocalImage};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// The engine's image API; `runner` runs what only the CLI can do (`docker save --platform`),
/// through devenv's one subprocess chokepoint.
pub struct DockerApi {
    pub runner: std::sync::Arc<dyn crate::process::Runner>,
}

/// Containers (running or not) carrying `label=value`, through the engine's API: one request,
/// no `docker ps` process. The caller falls back to the CLI on any error.
pub fn containers_labelled(label: &str, value: &str, cancel: &Cancel) -> Result<Vec<crate::world::NodeState>> {
    use bollard::models::ContainerSummaryStateEnum as State;
    let docker = client()?;
    let filters = std::collections::HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let rt = runtime()?;
    let list = rt.block_on(cancel.race(async {
        docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| api_err("listing containers", e))
    }))?;
    let mut nodes: Vec<crate::world::NodeState> = list
        .into_iter()
        .map(|c| crate::world::NodeState {
            name: c
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            role: c
                .labels
                .unwrap_or_default()
                .get("io.x-k8s.kind.role")
                .cloned()
                .unwrap_or_default(),
            running: c.state == Some(State::RUNNING),
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(e.to_string(), ""))
}

fn client() -> Result<Docker> {
    Docker::connect_with_defaults().map_err(|e| {
        Error::prerequisite(
            format!("cannot reach the Docker engine: {e}"),
            "start Docker; `devenv doctor` says more",
        )
    })
}

fn api_err(what: &str, e: bollard::errors::Error) -> Error {
    let text = e.to_string();
    if text.contains("No such file") || text.contains("Connection refused") || text.contains("connection refused") {
        Error::prerequisite(
            format!("the Docker engine does not answer ({text})"),
            "start Docker; `devenv doctor` says more",
        )
    } else {
        Error::failed(format!("{what}: {text}"), "")
    }
}

async fn exec_in(docker: &Docker, container: &str, argv: &[String], stdin: bool) -> Result<(String, StartExecResults)> {
    let opts = CreateExecOptions {
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(argv.to_vec()),
        ..Default::default()
    };
    let created = docker
        .create_exec(container, opts)
        .await
        .map_err(|e| api_err(&format!("node {container}: exec"), e))?;
    let started = docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| api_err(&format!("node {container}: exec"), e))?;
    Ok((created.id, started))
}

/// Reads an exec's output to the end: (stdout, stderr).
async fn drain(
    mut output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(Ok(chunk)) = output.next().await {
        match chunk {
            LogOutput::StdErr { message } => err.extend_from_slice(&message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => out.extend_from_slice(&message),
            LogOutput::StdIn { .. } => {}
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// `docker pull --quiet [--platform=P] REF`: through the CLI, which has the user's registry
/// credentials (credential helpers, `docker login`) and proxy settings.
pub fn pull_cmd(name: &str, platform: Option<&str>) -> crate::process::Cmd {
    let mut c = crate::process::Cmd::new("docker").args(["pull", "--quiet"]);
    if let Some(p) = platform {
        c = c.arg(format!("--platform={p}"));
    }
    c.arg(name).timeout(std::time::Duration::from_secs(900))
}

impl ImageTransport for DockerApi {
    fn pull(&self, name: &str, platform: Option<&str>, cancel: &Cancel) -> Result<()> {
        self.runner
            .run(&pull_cmd(name, platform), cancel)
            .map(|_| ())
            .map_err(|e| {
                e.into_error(
                    cancel,
                    "check the network and the registry (`docker pull` by hand says the same); `imageCache: false` in devenv.yaml leaves the images to the nodes",
                )
            })
    }

    fn containerd_store(&self, _cancel: &Cancel) -> Result<bool> {
        let docker = client()?;
        runtime()?.block_on(async {
            let info = docker.info().await.map_err(|e| api_err("docker info", e))?;
            Ok(info
                .driver_status
                .unwrap_or_default()
                .iter()
                .flatten()
                .any(|s| s.contains("io.containerd.snapshotter")))
        })
    }

    fn local_image(&self, name: &str, _cancel: &Cancel) -> Result<Option<LocalImage>> {
        let docker = client()?;
        runtime()?.block_on(async {
            match docker.inspect_image(name).await {
                Ok(i) => Ok(Some(LocalImage {
                    name: name.to_string(),
                    id: i.id.unwrap_or_default(),
                    platform: format!(
                        "{}/{}",
                        i.os.unwrap_or_else(|| "linux".into()),
                        i.architecture.unwrap_or_default()
                    ),
                    size: i.size.unwrap_or_default().max(0) as u64,
                })),
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
                Err(e) => Err(api_err(&format!("inspecting image {name}"), e)),
            }
        })
    }

    fn exec(&self, container: &str, argv: &[String], _cancel: &Cancel) -> Result<ExecOutput> {
        let docker = client()?;
        runtime()?.block_on(async {
            let (id, started) = exec_in(&docker, container, argv, false).await?;
            let (stdout, stderr) = match started {
                StartExecResults::Attached { output, .. } => drain(output).await,
                StartExecResults::Detached => (String::new(), String::new()),
            };
            let code = docker
                .inspect_exec(&id)
                .await
                .map_err(|e| api_err("exec", e))?
                .exit_code
                .unwrap_or(-1);
            Ok(ExecOutput { code, stdout, stderr })
        })
    }

    fn stream_into(
        &self,
        images: &[String],
        platform: Option<&str>,
        containers: &[String],
        argv: &[String],
        progress: &(dyn Fn(&str, u64) + Sync),
        cancel: &Cancel,
    ) -> Result<Vec<Delivery>> {
        let docker = client()?;
        runtime()?.block_on(async {
            struct Sink {
                node: String,
                id: String,
                input: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
                drainer: tokio::task::JoinHandle<(String, String)>,
                bytes: u64,
                broken: Option<String>,
            }
            let mut sinks = Vec::new();
            for node in containers {
                let (id, started) = exec_in(&docker, node, argv, true).await?;
                let StartExecResults::Attached { output, input } = started else {
                    return Err(Error::failed(
                        format!("node {node}: the engine did not attach to `{}`", argv.join(" ")),
                        "",
                    ));
                };
                sinks.push(Sink {
                    node: node.clone(),
                    id,
                    input: Some(input),
                    drainer: tokio::spawn(drain(output)),
                    bytes: 0,
                    broken: None,
                });
            }
            let names: Vec<&str> = images.iter().map(String::as_str).collect();
            // The archive: the engine's export, or for one platform only `docker save --platform`
            // (the API's export has no platform option).
            let mut cli = match platform {
                None => None,
                Some(p) => Some(
                    self.runner
                        .stream(
                            &crate::process::Cmd::new("docker")
                                .args(["save", "--platform", p])
                                .args(names.iter().copied()),
                            cancel,
                        )
                        .map_err(|e| e.into_error(cancel, ""))?,
                ),
            };
            let mut export = docker.export_images(&names).boxed();
            loop {
                if cancel.is_cancelled() {
                    // The chokepoint ends the child (SIGTERM to its group) and says so.
                    if let Some(c) = cli.take() {
                        let _ = c.finish(cancel);
                    }
                    return Err(cancel.error());
                }
                let chunk: Vec<u8> = match cli.take() {
                    Some(mut c) => {
                        // The pipe is read on a blocking thread, not on the runtime's.
                        let (c, buf) = tokio::task::spawn_blocking(move || {
                            let mut buf = vec![0u8; 1 << 20];
                            let n = c_read(&mut c, &mut buf);
                            buf.truncate(n);
                            (c, buf)
                        })
                        .await
                        .map_err(|e| Error::failed(format!("`docker save` reader: {e}"), ""))?;
                        cli = Some(c);
                        buf
                    }
                    None => match export.next().await {
                        Some(Ok(b)) => b.to_vec(),
                        Some(Err(e)) => return Err(api_err(&format!("exporting {}", names.join(", ")), e)),
                        None => vec![],
                    },
                };
                if chunk.is_empty() {
                    break;
                }
                for s in sinks.iter_mut().filter(|s| s.broken.is_none()) {
                    let Some(input) = s.input.as_mut() else { continue };
                    match input.write_all(&chunk).await {
                        Ok(()) => {
                            s.bytes += chunk.len() as u64;
                            progress(&s.node, s.bytes);
                        }
                        Err(e) => s.broken = Some(format!("the node stopped reading after {} bytes ({e})", s.bytes)),
                    }
                }
            }
            if let Some(c) = cli {
                c.finish(cancel)
                    .map_err(|e| e.into_error(cancel, "check the image with `docker image inspect`"))?;
            }
            let mut out = Vec::new();
            for mut s in sinks {
                if let Some(mut input) = s.input.take() {
                    let _ = input.shutdown().await;
                }
                let (stdout, stderr) = s.drainer.await.unwrap_or_default();
                let code = docker
                    .inspect_exec(&s.id)
                    .await
                    .map_err(|e| api_err("exec", e))?
                    .exit_code
                    .unwrap_or(-1);
                let result = match s.broken {
                    Some(why) if code == 0 => Err(Error::failed(why, "")),
                    _ => Ok(ExecOutput { code, stdout, stderr }),
                };
                out.push(Delivery {
                    node: s.node,
                    bytes: s.bytes,
                    result,
                });
            }
            Ok(out)
        })
    }
}

fn c_read(c: &mut Box<dyn crate::process::Stream>, buf: &mut [u8]) -> usize {
    c.read(buf).unwrap_or(0)
}

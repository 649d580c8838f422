//! Redis: groundhog2k's `redis` chart on the official `redis` image, without a password (it is
//! reached only from this machine's loopback and from inside the cluster).
//!
//! What the chart makes, as its render shows (`tests/it/charts.rs`): Deployment and Service `redis`
//! labelled `app.kubernetes.io/instance: redis` (a StatefulSet only in HA mode); its image is
//! `image.registry/image.repository:image.tag`, the chart's appVersion when the tag is empty.

use super::{ComponentSpec, Cx, EnvVar, pinned_images};
use crate::error::Result;
use crate::world::{Check, Probe, Workloads};
use serde_json::json;

pub const NAME: &str = "redis";
pub const NAMESPACE: &str = "devenv-data";
pub const PORT: u16 = 6379;
pub const IMAGES: &[&str] = &["redis"];

pub fn spec(cx: &Cx) -> Result<ComponentSpec> {
    let p = &cx.config.project;
    let chart = &cx.config.versions.redis;
    let mut c = ComponentSpec::new(cx.config, NAME, NAMESPACE, chart);
    let mut generated = json!({"service": {"type": "NodePort", "nodePort": p.node_ports.redis.port}});
    for (_, r) in pinned_images(NAME, chart, IMAGES)? {
        generated["image"] =
            json!({"registry": r.registry, "repository": r.repository, "tag": super::tag_with_digest(&r)});
    }
    c.generated = generated;
    c.ready = vec![Workloads {
        require_some: true,
        ..Workloads::release(NAME, NAMESPACE)
    }];
    c.in_cluster = Some((format!("{NAME}.{NAMESPACE}.svc.cluster.local"), PORT));
    if let Some((host, port)) = cx.host_endpoint(p.node_ports.redis.port) {
        c.probes.push(Probe {
            name: NAME.into(),
            host: host.clone(),
            port,
            check: Check::Redis,
        });
        c.env
            .push(EnvVar::text("REDIS_URL", format!("redis://{host}:{port}/0")));
        c.endpoint = Some(format!("{host}:{port}"));
    }
    Ok(c.sealed())
}

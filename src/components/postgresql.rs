//! PostgreSQL: groundhog2k's `postgres` chart on the official `postgres` image (not Bitnami,
//! whose images no longer pull).
//!
//! What the chart makes, as its render shows (`tests/it/charts.rs`): StatefulSet, Service and Secret
//! `postgresql` labelled `app.kubernetes.io/instance: postgresql`; its image is
//! `image.registry/image.repository:image.tag`, the chart's appVersion when the tag is empty (so
//! devenv sets the pin); the init container and the server run as uid 999, non-root, with
//! `PGDATA=/var/lib/postgresql/data/pg`: the claim is mounted at `/var/lib/postgresql/data` and
//! the server itself creates `pg` in it. With `storage.persistentVolumeClaimName` the pod mounts
//! that claim instead of its own template.
//!
//! With persistent data (kind) the claim is bound to a hostPath volume on the state directory's
//! `data/postgresql`. A hostPath directory the kubelet has to create is made by root with mode
//! 0755, and hostPath volumes get no fsGroup change, so uid 999 could not create `pg` in it:
//! devenv makes the directory itself, open to the pod's user, before the volume exists, and the
//! volume requires it to be there (`type: Directory`).

use super::{ComponentSpec, Cx, EnvVar, Part, Secret, pinned_images};
use crate::error::Result;
use crate::world::{Access, Check, HostDir, Probe, VolumeSpec, Workloads};
use serde_json::json;

pub const NAME: &str = "postgresql";
pub const NAMESPACE: &str = "devenv-data";
/// The claim the StatefulSet mounts (`storage.persistentVolumeClaimName`).
pub const CLAIM: &str = "postgresql-data";
/// The uid the chart runs PostgreSQL as (`securityContext.runAsUser`).
pub const UID: u32 = 999;
/// Where the server keeps its data: the claim's mount (`settings.dataDir`) and `settings.pgDir`.
pub const PGDATA: &str = "/var/lib/postgresql/data/pg";
/// The data directory under the state directory's `data/` (and `/devenv-data/` in the nodes).
pub const DATA_DIR: &str = "postgresql";
pub const PORT: u16 = 5432;
pub const USER: &str = "postgres";
pub const DATABASE: &str = "postgres";
pub const IMAGES: &[&str] = &["postgres"];

pub fn spec(cx: &Cx) -> Result<ComponentSpec> {
    let p = &cx.config.project;
    let chart = &cx.config.versions.postgresql;
    let mut c = ComponentSpec::new(cx.config, NAME, NAMESPACE, chart);
    let mut generated = json!({"service": {"type": "NodePort", "nodePort": p.node_ports.postgresql.port}});
    for (_, r) in pinned_images(NAME, chart, IMAGES)? {
        generated["image"] =
            json!({"registry": r.registry, "repository": r.repository, "tag": super::tag_with_digest(&r)});
    }
    if persistent(cx) {
        generated["storage"] = json!({"persistentVolumeClaimName": CLAIM});
        c.volumes.push(VolumeSpec {
            component: NAME.into(),
            name: format!("devenv-{}-{NAME}", p.name),
            namespace: NAMESPACE.into(),
            claim: CLAIM.into(),
            node_path: format!("{}/{DATA_DIR}", crate::config::kind::DATA_MOUNT),
            size: "1Gi".into(),
            access: Access::ReadWriteOnce,
            host_dir: HostDir::Data(DATA_DIR),
        });
    }
    c.generated = generated;
    c.secrets = vec![("/settings/superuserPassword/value", Secret::PostgresPassword)];
    c.ready = vec![Workloads {
        require_some: true,
        ..Workloads::release(NAME, NAMESPACE)
    }];
    c.in_cluster = Some((format!("{NAME}.{NAMESPACE}.svc.cluster.local"), PORT));
    if let Some((host, port)) = cx.host_endpoint(p.node_ports.postgresql.port) {
        c.probes.push(Probe {
            name: NAME.into(),
            host: host.clone(),
            port,
            check: Check::Postgres {
                user: USER.into(),
                database: DATABASE.into(),
            },
        });
        c.env.push(EnvVar {
            name: "DATABASE_URL",
            value: vec![
                Part::Text(format!("postgres://{USER}:")),
                Part::Secret(Secret::PostgresPassword),
                Part::Text(format!("@{host}:{port}/{DATABASE}")),
            ],
        });
        c.endpoint = Some(format!("{host}:{port}"));
    }
    Ok(c.sealed())
}

/// PostgreSQL's data lives on this machine (kind, `postgresql.persistentData`).
pub fn persistent(cx: &Cx) -> bool {
    let p = &cx.config.project;
    p.driver == crate::config::Driver::Kind && p.postgresql && p.persistent_data
}

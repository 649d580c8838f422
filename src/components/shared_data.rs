//! Shared data (optional, kind only): a directory on this machine mounted into every node and
//! offered to pods as a ReadWriteMany claim bound to a hostPath volume. Not a chart: devenv makes
//! the volume and the claim itself.

use super::Cx;
use crate::config::Driver;
use crate::config::kind::DATA_MOUNT;
use crate::error::{Error, Result};
use crate::world::{Access, HostDir, VolumeSpec};

pub const NAME: &str = "shared-data";
/// Where the directory of `sharedData.path` is mounted in every node; the default directory
/// (the state directory's `data/shared`) rides on the data mount instead.
pub use crate::config::kind::SHARED_MOUNT;
/// The default directory under the state directory's `data/`.
pub const DATA_DIR: &str = "shared";

/// The shared data volume, when switched on.
#[derive(Debug, Clone)]
pub struct SharedSpec {
    pub volume: VolumeSpec,
    /// The node path that must be mounted for the volume to reach the host directory.
    pub mount: &'static str,
    /// Of everything the volume is made of; recorded in the cluster when created.
    pub digest: String,
}

impl SharedSpec {
    /// What `up` records in the cluster for the volume it made: `<digest> <namespace>/<claim> <pv>`,
    /// so that switching it off later removes exactly that, whatever devenv.yaml says by then.
    pub fn record(&self) -> String {
        let v = &self.volume;
        format!("{} {}/{} {}", self.digest, v.namespace, v.claim, v.name)
    }

    /// Whether `record` is of this volume as the configuration now describes it.
    pub fn is_current(&self, record: Option<&str>) -> bool {
        record.is_some_and(|r| SharedRecord::parse(r).digest == self.digest)
    }

    /// `sharedData.path`, when the user named one.
    pub fn user_dir(&self) -> Option<&std::path::Path> {
        match &self.volume.host_dir {
            HostDir::User(p) => Some(p),
            HostDir::Data(_) => None,
        }
    }
}

/// A shared-volume record read back ([`SharedSpec::record`]).
pub struct SharedRecord<'a> {
    pub digest: &'a str,
    pub namespace: &'a str,
    pub claim: &'a str,
    pub pv: &'a str,
}

impl<'a> SharedRecord<'a> {
    pub fn parse(record: &'a str) -> SharedRecord<'a> {
        let mut parts = record.split(' ');
        let digest = parts.next().unwrap_or("");
        let (namespace, claim) = parts.next().unwrap_or("").split_once('/').unwrap_or(("", ""));
        SharedRecord {
            digest,
            namespace,
            claim,
            pv: parts.next().unwrap_or(""),
        }
    }
}

pub fn spec(cx: &Cx) -> Result<SharedSpec> {
    let p = &cx.config.project;
    if p.driver != Driver::Kind {
        return Err(Error::usage(
            "shared-data mounts a directory of this machine into the nodes, which only the kind driver does",
            "drop shared-data (`--without shared-data`, or `sharedData.enabled: false`), or use --driver kind",
        ));
    }
    let sd = &p.shared;
    let (mount, node_path, host_dir) = match &sd.path {
        Some(path) => (SHARED_MOUNT, SHARED_MOUNT.to_string(), HostDir::User(path.clone())),
        None => (DATA_MOUNT, format!("{DATA_MOUNT}/{DATA_DIR}"), HostDir::Data(DATA_DIR)),
    };
    let volume = VolumeSpec {
        component: NAME.into(),
        name: format!("devenv-{}-{NAME}", p.name),
        namespace: sd.namespace.clone(),
        claim: sd.claim.clone(),
        node_path,
        size: sd.size.clone(),
        access: Access::ReadWriteMany,
        host_dir,
    };
    let host = sd.path.as_ref().map(|x| x.display().to_string()).unwrap_or_default();
    let digest = super::digest(&[
        &volume.name,
        &volume.namespace,
        &volume.claim,
        &volume.node_path,
        &volume.size,
        &host,
    ]);
    Ok(SharedSpec { volume, mount, digest })
}

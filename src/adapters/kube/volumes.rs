//! Volumes on this machine's directories: a retained hostPath volume pre-bound to its claim (made
//! once; one still bound to a claim devenv.yaml renamed is refused), and their removal.

use super::client::{api, block, code};
use super::objects::volume_objects;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::world::KubeTarget;
use crate::world::VolumeSpec;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, PostParams};

pub fn ensure_volume(t: &KubeTarget, v: &VolumeSpec, cancel: &Cancel) -> Result<()> {
    block(t, cancel, |client| async move {
        let (ns, pv, pvc) = volume_objects(v);
        let pp = PostParams::default();
        let exists = |r: std::result::Result<(), kube::Error>, what: &str| match r {
            Err(e) if code(&e) != Some(409) => Err(api(&format!("creating {what}"), t)(e)),
            _ => Ok(()),
        };
        exists(
            Api::<Namespace>::all(client.clone()).create(&pp, &ns).await.map(|_| ()),
            &format!("namespace {}", v.namespace),
        )?;
        let pvs = Api::<PersistentVolume>::all(client.clone());
        exists(
            pvs.create(&pp, &pv).await.map(|_| ()),
            &format!("PersistentVolume {}", v.name),
        )?;
        // A volume kept from before may still be bound to a claim devenv.yaml has renamed.
        if let Some(have) = pvs
            .get_opt(&v.name)
            .await
            .map_err(api(&format!("reading PersistentVolume {}", v.name), t))?
        {
            let bound = have.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
            if let Some(r) = bound
                && (r.namespace.as_deref() != Some(v.namespace.as_str()) || r.name.as_deref() != Some(v.claim.as_str()))
            {
                let (ns, claim) = (
                    r.namespace.clone().unwrap_or_default(),
                    r.name.clone().unwrap_or_default(),
                );
                return Err(Error::failed(
                    format!(
                        "PersistentVolume {} is bound to claim {ns}/{claim}, not to {}/{} as devenv.yaml now says",
                        v.name, v.namespace, v.claim
                    ),
                    format!(
                        "free it (the files stay): `kubectl delete pvc -n {ns} {claim}` then `kubectl delete pv {}`, and run `devenv up` again",
                        v.name
                    ),
                ));
            }
        }
        exists(
            Api::<PersistentVolumeClaim>::namespaced(client, &v.namespace)
                .create(&pp, &pvc)
                .await
                .map(|_| ()),
            &format!("PersistentVolumeClaim {}/{}", v.namespace, v.claim),
        )
    })
}

pub fn delete_volume(t: &KubeTarget, pv: &str, namespace: &str, claim: &str, cancel: &Cancel) -> Result<()> {
    block(t, cancel, |client| async move {
        let gone = |r: std::result::Result<(), kube::Error>, what: String| match r {
            Err(e) if code(&e) != Some(404) => Err(api(&format!("deleting {what}"), t)(e)),
            _ => Ok(()),
        };
        if !namespace.is_empty() && !claim.is_empty() {
            gone(
                Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace)
                    .delete(claim, &DeleteParams::default())
                    .await
                    .map(|_| ()),
                format!("PersistentVolumeClaim {namespace}/{claim}"),
            )?;
        }
        gone(
            Api::<PersistentVolume>::all(client)
                .delete(pv, &DeleteParams::default())
                .await
                .map(|_| ()),
            format!("PersistentVolume {pv}"),
        )
    })
}

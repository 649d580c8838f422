//! devenv's records in the cluster: one ConfigMap per environment in kube-system, each naming its
//! environment, written key by key with JSON merge patches so that steps running at once never
//! overwrite each other's keys.

use super::client::{api, block, code};
use super::objects::parse;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::world::Applied;
use crate::world::KubeTarget;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

pub const RECORD_NAMESPACE: &str = "kube-system";

/// The label naming the environment a record is of.
pub const ENV_LABEL: &str = "devenv.dev/environment";

pub fn configmap_name(env: &str) -> String {
    format!("devenv-{env}")
}

pub fn records(t: &KubeTarget, cancel: &Cancel) -> Result<Vec<(String, Applied)>> {
    block(t, cancel, |client| async move {
        let list = Api::<ConfigMap>::namespaced(client, RECORD_NAMESPACE)
            .list(&ListParams::default().labels(ENV_LABEL))
            .await
            .map_err(api("reading devenv's records", t))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|cm| {
                let env = cm.metadata.labels.as_ref()?.get(ENV_LABEL)?.clone();
                (cm.metadata.name.as_deref() == Some(configmap_name(&env).as_str())).then(|| {
                    (
                        env,
                        Applied {
                            entries: cm.data.unwrap_or_default().into_iter().collect(),
                        },
                    )
                })
            })
            .collect())
    })
}

/// A JSON merge patch of one key: steps running at once never overwrite each other's keys.
pub fn set_applied(t: &KubeTarget, env: &str, key: &str, value: Option<&str>, cancel: &Cancel) -> Result<()> {
    block(t, cancel, |client| async move {
        let cms = Api::<ConfigMap>::namespaced(client, RECORD_NAMESPACE);
        let name = configmap_name(env);
        let err = api(
            &format!("writing `{key}` into devenv's record {RECORD_NAMESPACE}/{name}"),
            t,
        );
        let patch = serde_json::json!({"data": {key: value}});
        for _ in 0..3 {
            match cms.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                Err(e) if code(&e) == Some(404) && value.is_none() => return Ok(()),
                Err(e) if code(&e) == Some(404) => {
                    let cm: ConfigMap = parse(serde_json::json!({
                        "metadata": {"name": name, "namespace": RECORD_NAMESPACE,
                                     "labels": {"app.kubernetes.io/managed-by": "devenv", ENV_LABEL: env}},
                        "data": {key: value},
                    }));
                    match cms.create(&PostParams::default(), &cm).await {
                        Ok(_) => return Ok(()),
                        // Another step created it meanwhile: patch it.
                        Err(e) if code(&e) == Some(409) => continue,
                        Err(e) => return Err(err(e)),
                    }
                }
                Err(e) => return Err(err(e)),
            }
        }
        Err(Error::failed(
            format!("writing `{key}` into devenv's record {RECORD_NAMESPACE}/{name} kept conflicting"),
            "run `devenv up` again",
        ))
    })
}

pub fn delete_applied(t: &KubeTarget, env: &str, cancel: &Cancel) -> Result<()> {
    block(t, cancel, |client| async move {
        match Api::<ConfigMap>::namespaced(client, RECORD_NAMESPACE)
            .delete(&configmap_name(env), &DeleteParams::default())
            .await
        {
            Err(e) if code(&e) != Some(404) => Err(api("deleting devenv's record", t)(e)),
            _ => Ok(()),
        }
    })
}

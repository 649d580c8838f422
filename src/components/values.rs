//! Helm values as data: devenv builds each generated values file as one mapping and serializes it
//! once, so a key can never appear twice (two `grafana:` keys in one file, the last silently
//! winning, is how monitoring once lost its Ingress).

use serde_json::{Map, Value};

/// Merges `over` into `base` the way helm coalesces values files given one after another: maps
/// merge key by key, anything else is replaced, and `null` removes the key.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match v {
                    Value::Null => {
                        b.remove(&k);
                    }
                    Value::Object(_) if b.get(&k).is_some_and(Value::is_object) => {
                        merge(b.get_mut(&k).expect("checked"), v);
                    }
                    v => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Sets the value at a JSON pointer (`/settings/superuserPassword/value`), making the maps on
/// the way.
pub fn set(root: &mut Value, pointer: &str, value: Value) {
    let mut cur = root;
    let keys: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, k) in keys.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let m = cur.as_object_mut().expect("made an object");
        if i + 1 == keys.len() {
            m.insert(k.to_string(), value);
            return;
        }
        cur = m.entry(k.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The one serialization of a generated values file.
pub fn to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).expect("JSON values serialize to YAML")
}

/// A user's values file as data (already validated when the configuration was loaded), for the
/// few keys devenv must follow (`grafana.enabled`, Traefik's `instanceLabelOverride`).
pub fn parse(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or(Value::Null)
}

/// Every leaf of a values mapping as (path, value): what a chart has to declare for the value to
/// mean anything.
pub fn leaves(v: &Value) -> Vec<(Vec<String>, Value)> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    path.push(k.clone());
                    walk(x, path, out);
                    path.pop();
                }
            }
            other => out.push((path.clone(), other.clone())),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn later_files_merge_into_earlier_ones_as_helm_does() {
        let mut v = json!({"service": {"type": "ClusterIP", "port": 5432}, "args": ["a"], "gone": 1});
        merge(
            &mut v,
            json!({"service": {"type": "NodePort", "nodePort": 30432}, "args": ["b"], "gone": null}),
        );
        assert_eq!(
            v,
            json!({"service": {"type": "NodePort", "port": 5432, "nodePort": 30432}, "args": ["b"]})
        );
    }

    #[test]
    fn a_secret_lands_at_its_pointer_and_the_file_has_each_key_once() {
        let mut v = json!({"grafana": {"ingress": {"enabled": true}, "adminUser": "admin"}});
        set(&mut v, "/grafana/adminPassword", json!("s3cret"));
        set(&mut v, "/settings/superuserPassword/value", json!("p"));
        let text = to_yaml(&v);
        assert_eq!(text.matches("grafana:").count(), 1, "{text}");
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back["grafana"]["adminPassword"], "s3cret");
        assert_eq!(back["grafana"]["ingress"]["enabled"], true);
        assert_eq!(back["settings"]["superuserPassword"]["value"], "p");
    }
}

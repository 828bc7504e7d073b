//! What the Kubernetes API server does to a write that kube-fake-client
//! does not: server-side apply's pruning of the fields a manager stopped
//! applying, and the immutability of a StatefulSet's spec outside the
//! fields Kubernetes lets change.

use serde_json::{Map, Value};

/// The result of server-side apply of `config` by one manager onto
/// `existing`. `previous` is what that manager applied last; `others` what
/// the other managers applied last. A field the manager applied before and
/// not now is removed unless another manager applies it; then `config` is
/// merged in (maps field by field, everything else — lists included —
/// replaced whole, as for atomic lists).
pub fn apply(
    existing: &Value,
    config: &Value,
    previous: Option<&Value>,
    others: &[&Value],
) -> Value {
    let mut result = existing.clone();
    if let Some(previous) = previous {
        prune(&mut result, config, previous, others);
    }
    merge(&mut result, config);
    result
}

fn prune(target: &mut Value, config: &Value, previous: &Value, others: &[&Value]) {
    let (Some(target), Some(previous)) = (target.as_object_mut(), previous.as_object()) else {
        return;
    };
    for (key, before) in previous {
        let now = config.get(key);
        let others_here: Vec<&Value> = others.iter().filter_map(|o| o.get(key)).collect();
        match now {
            None => {
                if others_here.is_empty() {
                    target.remove(key);
                } else if let Some(child) = target.get_mut(key) {
                    // Another manager owns part of it: keep theirs only.
                    prune(child, &Value::Object(Map::new()), before, &others_here);
                }
            }
            Some(now) if now.is_object() && before.is_object() => {
                if let Some(child) = target.get_mut(key) {
                    prune(child, now, before, &others_here);
                }
            }
            Some(_) => {}
        }
    }
}

/// Merges `patch` into `target`: maps recursively, everything else replaced.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// The StatefulSet spec fields an update may change (Kubernetes 1.32).
const MUTABLE_STATEFULSET_FIELDS: [&str; 6] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// The API server's refusal of an update of StatefulSet `name` from `old`
/// to `new`, if it changes an immutable part of the spec.
pub fn statefulset_update_error(name: &str, old: &Value, new: &Value) -> Option<String> {
    let fixed = |v: &Value| -> Value {
        let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(spec) = spec.as_object_mut() {
            for field in MUTABLE_STATEFULSET_FIELDS {
                spec.remove(field);
            }
        }
        spec
    };
    (fixed(old) != fixed(new)).then(|| {
        format!(
            "StatefulSet.apps \"{name}\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        )
    })
}

/// Bytes of a Kubernetes quantity (`10Gi`, `500M`, `1.5Ti`); None when it
/// does not parse.
fn quantity_bytes(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
        .iter()
        .position(|s| *s == suffix);
    let decimal = ["k", "M", "G", "T", "P", "E"]
        .iter()
        .position(|s| *s == suffix);
    let factor = match (suffix, binary, decimal) {
        ("", _, _) => 1.0,
        (_, Some(i), _) => 1024f64.powi(i as i32 + 1),
        (_, _, Some(i)) => 1000f64.powi(i as i32 + 1),
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * factor)
}

/// The API server's refusal of an update of claim `name` from `old` to
/// `new` that changes its storage request: smaller is invalid; larger
/// needs a StorageClass (the claim's, else the default among `classes`)
/// with `allowVolumeExpansion`. (status, reason, message).
pub fn claim_update_error(
    name: &str,
    old: &Value,
    new: &Value,
    classes: &[Value],
) -> Option<(u16, &'static str, String)> {
    let size = |v: &Value| {
        v["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .and_then(quantity_bytes)
    };
    let (Some(before), Some(after)) = (size(old), size(new)) else {
        return None;
    };
    if after < before {
        return Some((
            422,
            "Invalid",
            format!("PersistentVolumeClaim \"{name}\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than previous value"),
        ));
    }
    if after == before {
        return None;
    }
    let class = match new["spec"]["storageClassName"].as_str() {
        Some(wanted) => classes.iter().find(|c| c["metadata"]["name"] == wanted),
        None => classes.iter().find(|c| {
            c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        }),
    };
    let expands = class.is_some_and(|c| c["allowVolumeExpansion"] == true);
    (!expands).then(|| {
        (
            403,
            "Forbidden",
            format!("persistentvolumeclaims \"{name}\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"),
        )
    })
}

/// Moves a Secret's `stringData` into `data` (base64), as the API server
/// does on every write: readers only ever see `data`.
pub fn secret_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !secret["data"].is_object() {
        secret["data"] = Value::Object(Default::default());
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        secret["data"][key] =
            Value::from(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()));
    }
}

/// True when `a` and `b` are the same object but for the resource version,
/// the generation (the store raises it on every write but a status one,
/// where the API server raises it on spec changes only) and field
/// bookkeeping: a write from one to the other changes nothing.
pub fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("generation");
            meta.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_prunes_what_the_manager_stopped_applying() {
        let existing = json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2", "c": "3"}},
                              "data": {"k": "v", "old": "o"}});
        let previous =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v", "old": "o"}});
        let other = json!({"metadata": {"labels": {"c": "3"}}});
        let config = json!({"metadata": {"labels": {"a": "9"}}, "data": {"k": "w"}});
        let out = apply(&existing, &config, Some(&previous), &[&other]);
        assert_eq!(
            out,
            json!({"metadata": {"name": "x", "labels": {"a": "9", "c": "3"}}, "data": {"k": "w"}})
        );
        // A field another manager also applies stays.
        let other = json!({"data": {"old": "o"}});
        let out = apply(&existing, &config, Some(&previous), &[&other]);
        assert_eq!(out["data"], json!({"k": "w", "old": "o"}));
        // A field dropped as a whole subtree goes with its children.
        let config = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let out = apply(&existing, &config, Some(&previous), &[]);
        assert!(out.get("data").is_none(), "{out}");
        // Without a previous apply, apply merges (a merge patch would too).
        let out = apply(&existing, &json!({"data": {"n": "1"}}), None, &[]);
        assert_eq!(out["data"], json!({"k": "v", "old": "o", "n": "1"}));
    }

    #[test]
    fn lists_are_replaced_whole() {
        let existing = json!({"spec": {"args": ["a", "b"], "n": 1}});
        let config = json!({"spec": {"args": ["c"]}});
        let out = apply(
            &existing,
            &config,
            Some(&json!({"spec": {"args": ["a", "b"]}})),
            &[],
        );
        assert_eq!(out, json!({"spec": {"args": ["c"], "n": 1}}));
    }

    #[test]
    fn a_claim_grows_only_on_a_class_that_expands_and_never_shrinks() {
        let claim = |size: &str, class: Option<&str>| {
            let mut c = json!({"spec": {"resources": {"requests": {"storage": size}}}});
            if let Some(class) = class {
                c["spec"]["storageClassName"] = json!(class);
            }
            c
        };
        let classes = [
            json!({"metadata": {"name": "fast", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "allowVolumeExpansion": true}),
            json!({"metadata": {"name": "fixed"}}),
        ];
        let check = |old, new| claim_update_error("data-0", &old, &new, &classes).map(|e| e.0);
        assert_eq!(check(claim("1Gi", None), claim("2Gi", None)), None);
        assert_eq!(
            check(claim("1Gi", Some("fast")), claim("2Gi", Some("fast"))),
            None
        );
        assert_eq!(
            check(claim("1Gi", Some("fixed")), claim("2Gi", Some("fixed"))),
            Some(403)
        );
        assert_eq!(check(claim("2Gi", None), claim("1Gi", None)), Some(422));
        assert_eq!(
            check(claim("1Gi", Some("fixed")), claim("1024Mi", Some("fixed"))),
            None
        );
        assert_eq!(
            claim_update_error("d", &claim("1Gi", None), &claim("2Gi", None), &[]).map(|e| e.0),
            Some(403)
        );
    }

    #[test]
    fn statefulset_immutability_is_kubernetes_rule() {
        let old = json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"a": "1"}},
            "serviceName": "s", "template": {"x": 1},
            "volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "1Gi"}}}}]}});
        let mut ok = old.clone();
        ok["spec"]["replicas"] = json!(3);
        ok["spec"]["template"] = json!({"x": 2});
        ok["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        assert_eq!(statefulset_update_error("s", &old, &ok), None);
        for (field, value) in [
            (
                "volumeClaimTemplates",
                json!([{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}]),
            ),
            ("selector", json!({"matchLabels": {"a": "2"}})),
            ("serviceName", json!("t")),
        ] {
            let mut bad = old.clone();
            bad["spec"][field] = value;
            let error = statefulset_update_error("s", &old, &bad).expect(field);
            assert!(error.contains("spec: Forbidden"), "{error}");
        }
    }
}

//! Checks of the generated and rendered YAML, without a cluster:
//!
//! - every object in `manifests/install.yaml` (rendered from the chart by
//!   `manifests/render.sh`; scripts/test re-renders it with a real helm and
//!   diffs) deserializes into its k8s-openapi type and serializes back to the
//!   same JSON — strict: a misspelled or misplaced field is dropped by the
//!   round trip and fails the comparison; a wrong type fails to deserialize;
//! - RBAC has no wildcards and no cluster-admin;
//! - the sample Tables pass the CRD schema round trip and its CEL rules
//!   (kube's client-side CEL), and the CEL rules refuse what they must;
//! - every printer column's JSONPath resolves in the CRD schema with the
//!   column's type;
//! - the chart ships exactly the CRDs crdgen generates.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::Validator;
use kube::CustomResourceExt;
use partita_operator::crd::{AccessPolicy, GlobalTable, Table};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}

use serde::Deserialize;

fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &back != doc {
        return Err(format!(
            "fields lost or changed in the round trip:\n  rendered: {doc}\n  typed:    {back}"
        ));
    }
    Ok(())
}

fn check_k8s_object(doc: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps, core, policy, rbac};
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api, kind) {
        ("v1", "Namespace") => round_trip::<core::v1::Namespace>(doc),
        ("v1", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(doc),
        ("v1", "Service") => round_trip::<core::v1::Service>(doc),
        ("v1", "ConfigMap") => round_trip::<core::v1::ConfigMap>(doc),
        ("v1", "Secret") => round_trip::<core::v1::Secret>(doc),
        ("apps/v1", "Deployment") => round_trip::<apps::v1::Deployment>(doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<policy::v1::PodDisruptionBudget>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<rbac::v1::ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<rbac::v1::ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<rbac::v1::Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<rbac::v1::RoleBinding>(doc),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<CustomResourceDefinition>(doc)
        }
        ("partita.dev/v1alpha1", "Table") => check_table(doc),
        ("partita.dev/v1alpha1", "AccessPolicy") => round_trip::<AccessPolicy>(doc),
        ("partita.dev/v1alpha1", "GlobalTable") => check_global_table(doc),
        _ => Err(format!("no schema known for {api} {kind}")),
    }
}

fn table_schema() -> Value {
    let crd = Table::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn global_table_schema() -> Value {
    let crd = GlobalTable::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn check_global_table(doc: &Value) -> Result<(), String> {
    round_trip::<GlobalTable>(doc)?;
    Validator::new()
        .validate(&global_table_schema(), doc, None)
        .map_err(|e| format!("CEL: {e:?}"))
}

fn check_table(doc: &Value) -> Result<(), String> {
    round_trip::<Table>(doc)?;
    Validator::new()
        .validate(&table_schema(), doc, None)
        .map_err(|e| format!("CEL: {e:?}"))
}

#[test]
fn install_yaml_objects_match_the_kubernetes_schemas() {
    let docs = documents("manifests/install.yaml");
    assert!(docs.len() >= 14, "install.yaml has {} objects", docs.len());
    let mut kinds = Vec::new();
    for doc in &docs {
        let name = format!("{} {}", doc["kind"], doc["metadata"]["name"]);
        if let Err(e) = check_k8s_object(doc) {
            panic!("{name}: {e}");
        }
        kinds.push(doc["kind"].as_str().unwrap().to_string());
    }
    for wanted in [
        "CustomResourceDefinition",
        "Deployment",
        "ClusterRole",
        "Role",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(
            kinds.iter().any(|k| k == wanted),
            "install.yaml lacks a {wanted}"
        );
    }
}

#[test]
fn rbac_is_least_privilege() {
    for doc in documents("manifests/install.yaml") {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind == "ClusterRole" || kind == "Role" {
            for rule in doc["rules"].as_array().unwrap() {
                for field in ["verbs", "resources", "apiGroups"] {
                    for v in rule[field].as_array().unwrap() {
                        assert_ne!(v, "*", "wildcard {field} in {}", doc["metadata"]["name"]);
                    }
                }
                assert!(!rule["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == "escalate" || v == "bind" || v == "impersonate"));
            }
        }
        if kind.ends_with("Binding") {
            assert_ne!(doc["roleRef"]["name"], "cluster-admin");
        }
    }
}

#[test]
fn samples_pass_schema_and_cel() {
    for file in [
        "manifests/samples/orders.yaml",
        "manifests/samples/accounts.yaml",
        "manifests/samples/access-policy.yaml",
        "manifests/samples/global-table.yaml",
    ] {
        for doc in documents(file) {
            if let Err(e) = check_k8s_object(&doc) {
                panic!("{file}: {e}");
            }
        }
    }
}

#[test]
fn chart_ships_the_generated_crds() {
    for (file, crd) in partita_operator::crd::all_crds() {
        let generated = partita_operator::crd::render_crd_yaml(&crd).unwrap();
        for dir in ["crds", "charts/partita/crds"] {
            let committed = std::fs::read_to_string(root().join(dir).join(file)).unwrap();
            assert_eq!(
                committed, generated,
                "{dir}/{file} is stale: run crdgen (and copy to the chart)"
            );
        }
    }
}

fn orders() -> Value {
    json!({
        "apiVersion": "partita.dev/v1alpha1",
        "kind": "Table",
        "metadata": {"name": "orders"},
        "spec": {
            "attributeDefinitions": [
                {"attributeName": "pk", "attributeType": "S"},
                {"attributeName": "sk", "attributeType": "S"},
            ],
            "keySchema": [
                {"attributeName": "pk", "keyType": "HASH"},
                {"attributeName": "sk", "keyType": "RANGE"},
            ],
            "provisionedThroughput": {"readCapacityUnits": 5, "writeCapacityUnits": 5},
        },
    })
}

fn cel_errors(obj: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(&table_schema(), obj, old) {
        Ok(()) => vec![],
        Err(errors) => format!("{errors:?}")
            .split("message")
            .skip(1)
            .map(str::to_string)
            .collect(),
    }
}

fn assert_refused(obj: &Value, old: Option<&Value>, message: &str) {
    let errors = format!("{:?}", Validator::new().validate(&table_schema(), obj, old));
    assert!(
        errors.contains(message),
        "expected {message:?}, got {errors}"
    );
}

#[test]
fn cel_accepts_a_valid_table() {
    assert_eq!(cel_errors(&orders(), None), Vec::<String>::new());
    let mut on_demand = orders();
    on_demand["spec"]["billingMode"] = json!("PAY_PER_REQUEST");
    on_demand["spec"]
        .as_object_mut()
        .unwrap()
        .remove("provisionedThroughput");
    on_demand["spec"]["onDemandThroughput"] = json!({"maxReadRequestUnits": 100});
    assert_eq!(cel_errors(&on_demand, None), Vec::<String>::new());
}

#[test]
fn cel_requires_attribute_definitions_for_every_key() {
    let mut t = orders();
    t["spec"]["attributeDefinitions"] = json!([{"attributeName": "pk", "attributeType": "S"}]);
    assert_refused(
        &t,
        None,
        "attributeDefinitions must define every keySchema attribute",
    );

    let mut t = orders();
    t["spec"]["globalSecondaryIndexes"] = json!([{
        "indexName": "by-status",
        "keySchema": [{"attributeName": "status", "keyType": "HASH"}],
        "projection": {"projectionType": "ALL"},
    }]);
    assert_refused(
        &t,
        None,
        "attributeDefinitions must define every globalSecondaryIndexes key attribute",
    );
}

#[test]
fn cel_checks_billing_mode_against_throughput() {
    let mut t = orders();
    t["spec"]["billingMode"] = json!("PAY_PER_REQUEST");
    assert_refused(
        &t,
        None,
        "provisionedThroughput is required with billingMode PROVISIONED",
    );
    let mut t = orders();
    t["spec"]
        .as_object_mut()
        .unwrap()
        .remove("provisionedThroughput");
    assert_refused(
        &t,
        None,
        "provisionedThroughput is required with billingMode PROVISIONED",
    );
    let mut t = orders();
    t["spec"]["onDemandThroughput"] = json!({"maxReadRequestUnits": 100});
    assert_refused(
        &t,
        None,
        "onDemandThroughput is only allowed with billingMode PAY_PER_REQUEST",
    );
}

#[test]
fn cel_limits_index_counts() {
    let lsi = |i: usize| {
        json!({
            "indexName": format!("lsi-{i}"),
            "keySchema": [{"attributeName": "pk", "keyType": "HASH"}, {"attributeName": "sk", "keyType": "RANGE"}],
            "projection": {"projectionType": "KEYS_ONLY"},
        })
    };
    let mut t = orders();
    t["spec"]["localSecondaryIndexes"] = json!((0..5).map(lsi).collect::<Vec<_>>());
    assert_eq!(cel_errors(&t, None), Vec::<String>::new());
    t["spec"]["localSecondaryIndexes"] = json!((0..6).map(lsi).collect::<Vec<_>>());
    assert_refused(&t, None, "a table has at most 5 localSecondaryIndexes");

    let gsi = |i: usize| {
        json!({
            "indexName": format!("gsi-{i}"),
            "keySchema": [{"attributeName": "sk", "keyType": "HASH"}],
            "projection": {"projectionType": "ALL"},
        })
    };
    let mut t = orders();
    t["spec"]["globalSecondaryIndexes"] = json!((0..21).map(gsi).collect::<Vec<_>>());
    assert_refused(&t, None, "a table has at most 20 globalSecondaryIndexes");
}

#[test]
fn cel_makes_key_schema_and_lsis_immutable() {
    let old = orders();
    let mut new = orders();
    new["spec"]["keySchema"] = json!([{"attributeName": "sk", "keyType": "HASH"}]);
    assert_refused(&new, Some(&old), "keySchema is immutable");

    let mut new = orders();
    new["spec"]["localSecondaryIndexes"] = json!([{
        "indexName": "lsi-1",
        "keySchema": [{"attributeName": "pk", "keyType": "HASH"}, {"attributeName": "sk", "keyType": "RANGE"}],
        "projection": {"projectionType": "ALL"},
    }]);
    assert_refused(&new, Some(&old), "localSecondaryIndexes are immutable");

    // Throughput may change.
    let mut new = orders();
    new["spec"]["provisionedThroughput"] =
        json!({"readCapacityUnits": 9000, "writeCapacityUnits": 5});
    assert_eq!(cel_errors(&new, Some(&old)), Vec::<String>::new());
}

#[test]
fn cel_checks_placement() {
    let mut t = orders();
    t["spec"]["placement"] = json!({"zones": ["a", "b", "c", "d"], "replicasPerPartition": 3});
    assert_refused(
        &t,
        None,
        "placement.zones must list at most one zone per replica",
    );
    // More replicas than zones, where the Table asks for it.
    t["spec"]["placement"] = json!({"zones": ["a", "b"], "replicasPerPartition": 3});
    assert_eq!(cel_errors(&t, None), Vec::<String>::new());
    t["spec"]["placement"] = json!({"zones": ["a", "a", "b"]});
    assert_refused(&t, None, "placement.zones must be distinct");
    t["spec"]["placement"] = json!({"replicasPerPartition": 2});
    assert_refused(&t, None, "replicasPerPartition must be odd");
}

/// Resolves a printer column's JSONPath in the CRD schema; returns the type found.
fn schema_type_at(schema: &Value, path: &str) -> Option<String> {
    let mut node = schema;
    for segment in path.trim_start_matches('.').split('.') {
        node = node.get("properties")?.get(segment)?;
    }
    node.get("type")
        .and_then(|t| t.as_str())
        .map(str::to_string)
}

#[test]
fn printer_columns_resolve_in_the_schema() {
    for (file, crd) in partita_operator::crd::all_crds() {
        let version = &crd.spec.versions[0];
        let schema = serde_json::to_value(
            version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        for col in version
            .additional_printer_columns
            .as_deref()
            .unwrap_or_default()
        {
            if col.json_path == ".metadata.creationTimestamp" {
                assert_eq!(col.type_, "date");
                continue;
            }
            // Filter expressions ([?(...)]) select into conditions arrays.
            let path = match col.json_path.split_once("[?(") {
                Some((head, _)) => {
                    let t = schema_type_at(&schema, head);
                    assert_eq!(t.as_deref(), Some("array"), "{file}: {}", col.json_path);
                    continue;
                }
                None => col.json_path.as_str(),
            };
            let found = schema_type_at(&schema, path);
            assert_eq!(
                found.as_deref(),
                Some(col.type_.as_str()),
                "{file}: column {} at {}",
                col.name,
                col.json_path
            );
        }
    }
    let table = Table::crd();
    let names: Vec<_> = table.spec.versions[0]
        .additional_printer_columns
        .as_deref()
        .unwrap()
        .iter()
        .map(|c| c.name.to_uppercase())
        .collect();
    assert_eq!(
        names,
        ["STATUS", "PARTITIONS", "READY", "RCU", "WCU", "AGE"]
    );
    assert_eq!(table.spec.names.short_names, Some(vec!["ptbl".to_string()]));
}

#[test]
fn round_trip_catches_misspelled_and_mistyped_fields() {
    let good = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"clusterIP": "None"}});
    assert!(check_k8s_object(&good).is_ok());
    let misspelled = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"clusterIp": "None"}});
    assert!(check_k8s_object(&misspelled).is_err());
    let mistyped = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "two", "selector": {}, "template": {}}});
    assert!(check_k8s_object(&mistyped).is_err());
}

fn find_doc<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("install.yaml has no {kind} {name}"))
}

#[test]
fn gateway_mounts_the_replication_secret_and_passes_the_flag() {
    use partita_topology::flags::{DEFAULT_ADMIN_PORT, REPLICATION};
    use partita_topology::replication::{FILE_NAME, SECRET_NAME};
    let docs = documents("manifests/install.yaml");
    let gateway = find_doc(&docs, "Deployment", "partita-gateway");
    let pod = &gateway["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args
        .iter()
        .position(|a| *a == REPLICATION)
        .unwrap_or_else(|| panic!("no {REPLICATION} in {args:?}"));
    assert_eq!(
        args[at + 1],
        format!("/etc/partita/replication/{FILE_NAME}")
    );
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/etc/partita/replication")
        .expect("replication mount");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("replication volume");
    assert_eq!(
        volume["secret"],
        json!({"secretName": SECRET_NAME, "optional": true})
    );

    // The operator reads GET /replication from the gateway Service's admin port.
    let service = find_doc(&docs, "Service", "partita-gateway");
    assert!(service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["port"] == DEFAULT_ADMIN_PORT));
    let operator = find_doc(&docs, "Deployment", "partita-operator");
    let env = operator["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let admin = env
        .iter()
        .find(|e| e["name"] == "PARTITA_GATEWAY_ADMIN_ENDPOINT")
        .expect("PARTITA_GATEWAY_ADMIN_ENDPOINT");
    assert_eq!(
        admin["value"],
        format!("http://partita-gateway.partita-system.svc:{DEFAULT_ADMIN_PORT}")
    );
}

/// Whether some rule of `role` grants `verb` on `resource` in `group`.
fn grants(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    role["rules"].as_array().unwrap().iter().any(|r| {
        let has = |field: &str, v: &str| {
            r[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == v))
        };
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

#[test]
fn rbac_covers_what_the_global_table_controller_does() {
    let docs = documents("manifests/install.yaml");
    let cluster = find_doc(&docs, "ClusterRole", "partita-partita-operator");
    for (group, resource, verb) in [
        ("partita.dev", "globaltables", "list"),
        ("partita.dev", "globaltables", "watch"),
        ("partita.dev", "globaltables/status", "patch"),
        ("partita.dev", "tables", "list"),
        ("partita.dev", "tables", "watch"),
        ("", "secrets", "get"),
        ("", "secrets", "list"),
        ("", "secrets", "watch"),
        ("events.k8s.io", "events", "create"),
    ] {
        assert!(
            grants(cluster, group, resource, verb),
            "ClusterRole lacks {verb} {group}/{resource}"
        );
    }
    // Writing Secrets cluster-wide only for the per-Table RPC certificates
    // (rpc.tls.enabled, the default; see chart_renders_mutual_tls_...).
    assert!(grants(cluster, "", "secrets", "patch"));
    let role = find_doc(&docs, "Role", "partita-operator");
    assert_eq!(role["metadata"]["namespace"], "partita-system");
    assert!(grants(role, "", "secrets", "create") && grants(role, "", "secrets", "patch"));
}

fn global_table() -> Value {
    json!({
        "apiVersion": "partita.dev/v1alpha1",
        "kind": "GlobalTable",
        "metadata": {"name": "orders"},
        "spec": {
            "tableRef": {"name": "orders"},
            "inboundCredentialsSecretRef": {"name": "replication-inbound"},
            "replicas": [
                {"regionName": "eu-west-1", "endpoint": "https://eu.example", "credentialsSecretRef": {"name": "eu"}},
                {"regionName": "ap-south-1", "endpoint": "http://ap.example:8000", "credentialsSecretRef": {"name": "ap"}},
            ],
        },
    })
}

fn global_cel(obj: &Value, old: Option<&Value>) -> String {
    format!(
        "{:?}",
        Validator::new().validate(&global_table_schema(), obj, old)
    )
}

#[test]
fn global_table_cel_rules() {
    let gt = global_table();
    assert_eq!(global_cel(&gt, None), "Ok(())");
    assert!(check_global_table(&gt).is_ok());
    // inboundCredentialsSecretRef is optional.
    let mut no_inbound = gt.clone();
    no_inbound["spec"]
        .as_object_mut()
        .unwrap()
        .remove("inboundCredentialsSecretRef");
    assert_eq!(global_cel(&no_inbound, None), "Ok(())");

    let mut twice = gt.clone();
    twice["spec"]["replicas"][1]["regionName"] = json!("eu-west-1");
    let errors = global_cel(&twice, None);
    assert!(
        errors.contains("replicas must name distinct regions"),
        "{errors}"
    );

    let mut moved = gt.clone();
    moved["spec"]["tableRef"]["name"] = json!("carts");
    let errors = global_cel(&moved, Some(&gt));
    assert!(errors.contains("tableRef is immutable"), "{errors}");
    // Regions, endpoints and the inbound Secret may change.
    let mut changed = gt.clone();
    changed["spec"]["replicas"][0]["endpoint"] = json!("https://eu2.example");
    changed["spec"]["inboundCredentialsSecretRef"]["name"] = json!("rotated");
    assert_eq!(global_cel(&changed, Some(&gt)), "Ok(())");
}

#[test]
fn global_table_schema_shapes() {
    let schema = global_table_schema();
    let spec = &schema["properties"]["spec"];
    assert_eq!(
        spec["properties"]["inboundCredentialsSecretRef"]["required"],
        json!(["name"])
    );
    assert!(!spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "inboundCredentialsSecretRef"));
    let replica = &schema["properties"]["status"]["properties"]["replicas"]["items"];
    let mut fields: Vec<&String> = replica["properties"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "lagSeconds",
            "message",
            "pendingChanges",
            "reachable",
            "regionName",
            "replicaStatus"
        ]
    );
    // A misspelled field is caught by the strict round trip.
    let mut typo = global_table();
    typo["spec"]["inboundCredentialSecretRef"] = json!({"name": "x"});
    assert!(check_global_table(&typo).is_err());
}

/// The chart's helm: `target/tools/helm/helm` (scripts/test unpacks it
/// there) or `helm` on PATH.
fn helm() -> PathBuf {
    let tools = root().join("target/tools/helm/helm");
    if tools.exists() {
        return tools;
    }
    PathBuf::from("helm")
}

/// `helm template partita charts/partita -n partita-system` with `sets`.
fn render_chart(sets: &[&str]) -> Vec<Value> {
    let mut cmd = std::process::Command::new(helm());
    cmd.current_dir(root()).args([
        "template",
        "partita",
        "charts/partita",
        "--namespace",
        "partita-system",
    ]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "running {} (run scripts/test's helm step first): {e}",
            helm().display()
        )
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::Deserializer::from_str(&String::from_utf8(out.stdout).unwrap())
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|x| x["name"] == name)
}

#[test]
fn chart_renders_mutual_tls_by_default_and_none_when_disabled() {
    use partita_operator::build::rpc_tls_flags;
    use partita_operator::tls::MOUNT;

    let docs = render_chart(&[]);
    for doc in &docs {
        check_k8s_object(doc)
            .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]));
    }
    // The CA Secret, generated.
    let ca = find_doc(&docs, "Secret", "partita-rpc-ca");
    assert_eq!(ca["type"], "kubernetes.io/tls");
    assert!(ca["data"]["tls.crt"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(ca["data"]["tls.key"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    // The gateway: the three flags (the same as the operator renders for
    // nodes) and its operator-issued Secret, required.
    let gateway = find_doc(&docs, "Deployment", "partita-gateway");
    let pod = &gateway["spec"]["template"]["spec"];
    let args = strings(&pod["containers"][0]["args"]);
    let flags = rpc_tls_flags().to_args();
    assert!(
        args.windows(flags.len()).any(|w| w == flags.as_slice()),
        "{args:?} lacks {flags:?}"
    );
    let mount =
        named(&pod["containers"][0]["volumeMounts"], "rpc-tls").expect("gateway rpc-tls mount");
    assert_eq!(mount["mountPath"], MOUNT);
    assert_eq!(mount["readOnly"], true);
    let volume = named(&pod["volumes"], "rpc-tls").expect("gateway rpc-tls volume");
    assert_eq!(volume["secret"]["secretName"], "partita-gateway-rpc-tls");
    assert!(volume["secret"].get("optional").is_none());
    // The operator: the CA mounted where PARTITA_RPC_TLS_CA_DIR points.
    let operator = find_doc(&docs, "Deployment", "partita-operator");
    let opod = &operator["spec"]["template"]["spec"];
    let env = named(&opod["containers"][0]["env"], "PARTITA_RPC_TLS_CA_DIR").expect("CA dir env");
    let mount = named(&opod["containers"][0]["volumeMounts"], "rpc-ca").expect("operator CA mount");
    assert_eq!(mount["mountPath"], env["value"]);
    let volume = named(&opod["volumes"], "rpc-ca").expect("operator CA volume");
    assert_eq!(volume["secret"]["secretName"], "partita-rpc-ca");
    // RBAC for what the operator does with it.
    let cluster = find_doc(&docs, "ClusterRole", "partita-partita-operator");
    assert!(grants(cluster, "", "secrets", "create") && grants(cluster, "", "secrets", "patch"));
    let role = find_doc(&docs, "Role", "partita-operator");
    assert!(grants(role, "apps", "deployments", "patch"));

    // Disabled: no CA, no flags, no mounts, no extra grants.
    let docs = render_chart(&["rpc.tls.enabled=false"]);
    assert!(!docs.iter().any(|d| d["kind"] == "Secret"));
    let text = serde_json::to_string(&docs).unwrap();
    for absent in ["--rpc-tls", "rpc-tls", "rpc-ca", "PARTITA_RPC_TLS_CA_DIR"] {
        assert!(
            !text.contains(absent),
            "{absent} rendered with rpc.tls.enabled=false"
        );
    }
    let cluster = find_doc(&docs, "ClusterRole", "partita-partita-operator");
    assert!(!grants(cluster, "", "secrets", "patch"));
    let role = find_doc(&docs, "Role", "partita-operator");
    assert!(!grants(role, "apps", "deployments", "patch"));
}

#[test]
fn chart_mounts_an_existing_ca_secret_instead_of_generating_one() {
    let docs = render_chart(&["rpc.tls.existingCASecret=my-ca"]);
    assert!(!docs.iter().any(|d| d["kind"] == "Secret"));
    let operator = find_doc(&docs, "Deployment", "partita-operator");
    let volume =
        named(&operator["spec"]["template"]["spec"]["volumes"], "rpc-ca").expect("CA volume");
    assert_eq!(volume["secret"]["secretName"], "my-ca");
    // manifests/install.yaml is rendered that way (no CA key in the repo).
    let install = documents("manifests/install.yaml");
    assert!(!install.iter().any(|d| d["kind"] == "Secret"));
    let operator = find_doc(&install, "Deployment", "partita-operator");
    let volume =
        named(&operator["spec"]["template"]["spec"]["volumes"], "rpc-ca").expect("CA volume");
    assert_eq!(volume["secret"]["secretName"], "partita-rpc-ca");
}

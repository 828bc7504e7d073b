//! `resolve`: every GlobalTable, the Tables and Secrets they name → the
//! merged replication file and one outcome per GlobalTable. Pure: the
//! controller fetches the inputs and passes them in.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::ResourceExt;
use partita_topology::replication::{Credentials, PeerRegion, ReplicationFile, FILE_NAME};

use crate::build::FIELD_MANAGER;
use crate::crd::access_policy::{ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY};
use crate::crd::{GlobalTable, Table};

/// `<namespace>/<name>` of a Secret.
pub type SecretKey = (String, String);

/// What one render needs.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub global_tables: &'a [GlobalTable],
    /// Every Table (any namespace); a tableRef resolves in its own namespace.
    pub tables: &'a [Table],
    /// The Secrets fetched for [`referenced_secrets`]; an absent key is a
    /// Secret that does not exist.
    pub secrets: &'a BTreeMap<SecretKey, Secret>,
    /// This region (`--region` of the operator and the gateway).
    pub own_region: &'a str,
}

/// Why a GlobalTable contributes nothing to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `tableRef` names no Table in the GlobalTable's namespace.
    TableNotFound { table: String },
    /// Secrets that do not exist or lack a key, each with what is wrong.
    SecretMissing { secrets: Vec<String> },
    /// A region another GlobalTable names with another endpoint or key.
    RegionConflict { region: String, other: String },
    /// The DynamoDB table is already replicated by another GlobalTable.
    TableConflict { table_name: String, other: String },
    /// The spec names this region, a region twice, or fails the file's
    /// own validation.
    InvalidSpec { message: String },
}

impl Problem {
    /// Condition and Event reason (bounded).
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::TableNotFound { .. } => "TableNotFound",
            Problem::SecretMissing { .. } => "SecretMissing",
            Problem::RegionConflict { .. } => "RegionConflict",
            Problem::TableConflict { .. } => "TableConflict",
            Problem::InvalidSpec { .. } => "InvalidSpec",
        }
    }

    /// `globalTableStatus` while the problem lasts: INACCESSIBLE when
    /// something it needs is missing, INVALID when the spec itself cannot be
    /// rendered.
    pub fn state(&self) -> &'static str {
        match self {
            Problem::TableNotFound { .. } | Problem::SecretMissing { .. } => "INACCESSIBLE",
            _ => "INVALID",
        }
    }

    /// The human message (names objects, never secret values).
    pub fn message(&self) -> String {
        match self {
            Problem::TableNotFound { table } => {
                format!("Table {table} does not exist in this namespace; nothing is replicated")
            }
            Problem::SecretMissing { secrets } => format!(
                "credentials Secret problem: {}; nothing is replicated",
                secrets.join("; ")
            ),
            Problem::RegionConflict { region, other } => format!(
                "region {region} is already configured by GlobalTable {other} with a different endpoint or credentials; nothing is replicated"
            ),
            Problem::TableConflict { table_name, other } => format!(
                "table {table_name} is already replicated by GlobalTable {other}; nothing is replicated"
            ),
            Problem::InvalidSpec { message } => format!("{message}; nothing is replicated"),
        }
    }
}

/// One GlobalTable's part of a render.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub namespace: String,
    pub name: String,
    /// The DynamoDB table name, when the Table was found.
    pub table_name: Option<String>,
    /// Its replica regions, in spec order.
    pub regions: Vec<String>,
    /// None when rendered into the file.
    pub problem: Option<Problem>,
}

/// The Secrets the GlobalTables name (credentials and inbound), sorted.
pub fn referenced_secrets(global_tables: &[GlobalTable]) -> BTreeSet<SecretKey> {
    let mut out = BTreeSet::new();
    for gt in global_tables {
        let ns = gt.namespace().unwrap_or_default();
        for r in &gt.spec.replicas {
            out.insert((ns.clone(), r.credentials_secret_ref.name.clone()));
        }
        if let Some(inbound) = &gt.spec.inbound_credentials_secret_ref {
            out.insert((ns.clone(), inbound.name.clone()));
        }
    }
    out
}

/// Reads `accessKeyId` and `secretAccessKey` (trimmed, non-empty) from a
/// Secret; the error says which key is missing.
pub fn read_credentials(secret: &Secret) -> Result<Credentials, &'static str> {
    let get = |k: &str| {
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| String::from_utf8(b.0.clone()).ok());
        let from_string_data = || secret.string_data.as_ref().and_then(|d| d.get(k)).cloned();
        from_data
            .or_else(from_string_data)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let access_key_id = get(ACCESS_KEY_ID_KEY).ok_or("has no accessKeyId")?;
    let secret_access_key = get(SECRET_ACCESS_KEY_KEY).ok_or("has no secretAccessKey")?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
    })
}

/// What one GlobalTable would add to the file.
struct Contribution {
    table_name: String,
    peers: Vec<PeerRegion>,
    inbound: Option<Credentials>,
}

fn contribution(gt: &GlobalTable, inputs: &Inputs<'_>) -> Result<Contribution, Problem> {
    let ns = gt.namespace().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for r in &gt.spec.replicas {
        if r.region_name == inputs.own_region {
            return Err(Problem::InvalidSpec {
                message: format!(
                    "replica region {} is this region; a region cannot replicate to itself",
                    r.region_name
                ),
            });
        }
        if !seen.insert(r.region_name.as_str()) {
            return Err(Problem::InvalidSpec {
                message: format!("replicas name region {} twice", r.region_name),
            });
        }
    }
    let table = inputs
        .tables
        .iter()
        .find(|t| {
            t.namespace().as_deref() == Some(ns.as_str()) && t.name_any() == gt.spec.table_ref.name
        })
        .ok_or_else(|| Problem::TableNotFound {
            table: gt.spec.table_ref.name.clone(),
        })?;

    let mut missing = Vec::new();
    let mut lookup = |name: &str| -> Option<Credentials> {
        match inputs.secrets.get(&(ns.clone(), name.to_string())) {
            None => {
                missing.push(format!("Secret {name} does not exist"));
                None
            }
            Some(secret) => match read_credentials(secret) {
                Ok(c) => Some(c),
                Err(what) => {
                    missing.push(format!("Secret {name} {what}"));
                    None
                }
            },
        }
    };
    let mut peers = Vec::new();
    for r in &gt.spec.replicas {
        if let Some(credentials) = lookup(&r.credentials_secret_ref.name) {
            peers.push(PeerRegion {
                region: r.region_name.clone(),
                endpoint: r.endpoint.clone(),
                credentials,
            });
        }
    }
    let inbound = gt
        .spec
        .inbound_credentials_secret_ref
        .as_ref()
        .and_then(|r| lookup(&r.name));
    if !missing.is_empty() {
        missing.dedup();
        return Err(Problem::SecretMissing { secrets: missing });
    }
    Ok(Contribution {
        table_name: table.dynamodb_name(),
        peers,
        inbound,
    })
}

fn creation_order(gt: &GlobalTable) -> (Option<String>, String, String) {
    (
        gt.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        gt.namespace().unwrap_or_default(),
        gt.name_any(),
    )
}

/// Renders the file from every GlobalTable not being deleted, oldest first
/// (so an older GlobalTable keeps its regions when a newer one conflicts).
/// Outcomes come in the input order. The file always passes
/// `ReplicationFile::validate(Some(own_region))`.
pub fn build_replication_file(inputs: &Inputs<'_>) -> (ReplicationFile, Vec<Outcome>) {
    let mut order: Vec<usize> = (0..inputs.global_tables.len())
        .filter(|&i| {
            inputs.global_tables[i]
                .metadata
                .deletion_timestamp
                .is_none()
        })
        .collect();
    order.sort_by_key(|&i| creation_order(&inputs.global_tables[i]));

    let mut file = ReplicationFile::new();
    // region → the GlobalTable that first configured it; table → likewise.
    let mut region_owner: BTreeMap<String, String> = BTreeMap::new();
    let mut table_owner: BTreeMap<String, String> = BTreeMap::new();
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    for i in order {
        let gt = &inputs.global_tables[i];
        let id = format!("{}/{}", gt.namespace().unwrap_or_default(), gt.name_any());
        let mut outcome = Outcome {
            namespace: gt.namespace().unwrap_or_default(),
            name: gt.name_any(),
            table_name: None,
            regions: gt
                .spec
                .replicas
                .iter()
                .map(|r| r.region_name.clone())
                .collect(),
            problem: None,
        };
        let result = contribution(gt, inputs).and_then(|c| {
            if let Some(other) = table_owner.get(&c.table_name) {
                return Err(Problem::TableConflict {
                    table_name: c.table_name.clone(),
                    other: other.clone(),
                });
            }
            for peer in &c.peers {
                if let Some(existing) = file.peer(&peer.region) {
                    if existing != peer {
                        return Err(Problem::RegionConflict {
                            region: peer.region.clone(),
                            other: region_owner.get(&peer.region).cloned().unwrap_or_default(),
                        });
                    }
                }
            }
            let mut candidate = file.clone();
            for peer in &c.peers {
                if candidate.peer(&peer.region).is_none() {
                    candidate.peers.push(peer.clone());
                }
            }
            candidate.inbound.extend(c.inbound.clone());
            candidate.tables.insert(
                c.table_name.clone(),
                c.peers.iter().map(|p| p.region.clone()).collect(),
            );
            candidate
                .validate(Some(inputs.own_region))
                .map_err(|e| Problem::InvalidSpec {
                    message: e.to_string(),
                })?;
            Ok((c, candidate))
        });
        match result {
            Ok((c, candidate)) => {
                for peer in &c.peers {
                    region_owner
                        .entry(peer.region.clone())
                        .or_insert_with(|| id.clone());
                }
                table_owner.insert(c.table_name.clone(), id);
                outcome.table_name = Some(c.table_name);
                file = candidate;
            }
            Err(problem) => {
                // The table name is still worth showing when only a Secret
                // or a conflict is the problem.
                outcome.table_name = inputs
                    .tables
                    .iter()
                    .find(|t| {
                        t.namespace() == gt.namespace() && t.name_any() == gt.spec.table_ref.name
                    })
                    .map(Table::dynamodb_name);
                outcome.problem = Some(problem);
            }
        }
        outcomes.insert(i, outcome);
    }
    // Canonical order, as the file is written.
    file.peers.sort_by(|a, b| a.region.cmp(&b.region));
    file.inbound
        .sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
    file.inbound.dedup();
    for regions in file.tables.values_mut() {
        regions.sort();
    }
    (file, outcomes.into_values().collect())
}

/// The Secret the gateway mounts: `<gateway>-replication` in the gateway's
/// namespace (`partita-gateway-replication` = [`SECRET_NAME`] with the
/// chart's names), key [`FILE_NAME`], labelled like the auth Secret.
pub fn build_replication_secret(namespace: &str, gateway: &str, file: &ReplicationFile) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("{gateway}-replication")),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/name".to_string(), "partita".to_string()),
                (
                    "app.kubernetes.io/component".to_string(),
                    "gateway".to_string(),
                ),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    FIELD_MANAGER.to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            FILE_NAME.to_string(),
            ByteString(file.to_json().into_bytes()),
        )])),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::global_table::{GlobalTableSpec, LocalObjectRef, RegionReplica};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use partita_topology::replication::SECRET_NAME;

    fn table(ns: &str, name: &str, table_name: &str) -> Table {
        let mut t: Table = serde_yaml::from_str(&format!(
            "apiVersion: partita.dev/v1alpha1\nkind: Table\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  tableName: {table_name}\n  attributeDefinitions: [{{attributeName: pk, attributeType: S}}]\n  keySchema: [{{attributeName: pk, keyType: HASH}}]\n  billingMode: PAY_PER_REQUEST\n"
        ))
        .unwrap();
        t.metadata.namespace = Some(ns.into());
        t
    }

    fn secret(ns: &str, name: &str, id: &str, key: Option<&str>) -> (SecretKey, Secret) {
        let mut data = BTreeMap::from([(
            ACCESS_KEY_ID_KEY.to_string(),
            ByteString(id.as_bytes().to_vec()),
        )]);
        if let Some(key) = key {
            data.insert(
                SECRET_ACCESS_KEY_KEY.to_string(),
                ByteString(key.as_bytes().to_vec()),
            );
        }
        (
            (ns.to_string(), name.to_string()),
            Secret {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(ns.into()),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..Secret::default()
            },
        )
    }

    fn gt(
        ns: &str,
        name: &str,
        table: &str,
        replicas: &[(&str, &str, &str)],
        created: i64,
    ) -> GlobalTable {
        let mut g = GlobalTable::new(
            name,
            GlobalTableSpec {
                table_ref: LocalObjectRef { name: table.into() },
                replicas: replicas
                    .iter()
                    .map(|(region, endpoint, secret)| RegionReplica {
                        region_name: region.to_string(),
                        endpoint: endpoint.to_string(),
                        credentials_secret_ref: LocalObjectRef {
                            name: secret.to_string(),
                        },
                    })
                    .collect(),
                inbound_credentials_secret_ref: None,
            },
        );
        g.metadata.namespace = Some(ns.into());
        g.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + created).unwrap(),
        ));
        g
    }

    const EU: (&str, &str, &str) = ("eu-west-1", "https://eu.example", "eu-creds");
    const AP: (&str, &str, &str) = ("ap-south-1", "https://ap.example", "ap-creds");

    fn secrets() -> BTreeMap<SecretKey, Secret> {
        BTreeMap::from([
            secret("shop", "eu-creds", "AKIAEU", Some("eu-secret")),
            secret("shop", "ap-creds", "AKIAAP", Some("ap-secret")),
            secret("shop", "inbound", "AKIAIN", Some("in-secret")),
            secret("shop", "half", "AKIAHALF", None),
            secret("other", "eu-creds", "AKIAEU2", Some("eu-secret-2")),
        ])
    }

    #[test]
    fn merges_regions_and_tables_with_inbound_credentials() {
        let mut orders = gt("shop", "orders", "orders", &[EU, AP], 0);
        orders.spec.inbound_credentials_secret_ref = Some(LocalObjectRef {
            name: "inbound".into(),
        });
        let carts = gt("shop", "carts", "carts", &[EU], 1);
        let tables = [
            table("shop", "orders", "Orders"),
            table("shop", "carts", "Carts"),
        ];
        let secrets = secrets();
        let (file, outcomes) = build_replication_file(&Inputs {
            global_tables: &[orders, carts],
            tables: &tables,
            secrets: &secrets,
            own_region: "us-east-1",
        });
        assert_eq!(file.validate(Some("us-east-1")), Ok(()));
        let v: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "formatVersion": 1,
                "peers": [
                    {"region": "ap-south-1", "endpoint": "https://ap.example", "accessKeyId": "AKIAAP", "secretAccessKey": "ap-secret"},
                    {"region": "eu-west-1", "endpoint": "https://eu.example", "accessKeyId": "AKIAEU", "secretAccessKey": "eu-secret"},
                ],
                "inbound": [{"accessKeyId": "AKIAIN", "secretAccessKey": "in-secret"}],
                "tables": {"Carts": ["eu-west-1"], "Orders": ["ap-south-1", "eu-west-1"]},
            })
        );
        assert!(outcomes.iter().all(|o| o.problem.is_none()));
        assert_eq!(outcomes[0].table_name.as_deref(), Some("Orders"));
    }

    #[test]
    fn a_newer_conflicting_region_is_left_out_entirely() {
        let older = gt("shop", "orders", "orders", &[EU], 0);
        // Same region, other namespace, other credentials.
        let newer = gt("other", "carts", "carts", &[EU, AP], 5);
        let tables = [
            table("shop", "orders", "Orders"),
            table("other", "carts", "Carts"),
        ];
        let mut secrets = secrets();
        secrets.extend([secret("other", "ap-creds", "AKIAAP", Some("ap-secret"))]);
        let (file, outcomes) = build_replication_file(&Inputs {
            global_tables: &[newer, older],
            tables: &tables,
            secrets: &secrets,
            own_region: "us-east-1",
        });
        assert_eq!(file.peers.len(), 1);
        assert_eq!(file.peers[0].credentials.access_key_id, "AKIAEU");
        assert_eq!(file.tables.keys().collect::<Vec<_>>(), ["Orders"]);
        assert_eq!(
            outcomes[0].problem,
            Some(Problem::RegionConflict {
                region: "eu-west-1".into(),
                other: "shop/orders".into()
            })
        );
        assert_eq!(outcomes[0].table_name.as_deref(), Some("Carts"));
        assert_eq!(outcomes[1].problem, None);
    }

    #[test]
    fn missing_inputs_and_bad_specs_are_problems() {
        let secrets = secrets();
        let tables = [table("shop", "orders", "Orders")];
        let cases = [
            (gt("shop", "a", "nope", &[EU], 0), "TableNotFound"),
            (
                gt(
                    "shop",
                    "b",
                    "orders",
                    &[("eu-west-1", "https://eu", "absent")],
                    0,
                ),
                "SecretMissing",
            ),
            (
                gt(
                    "shop",
                    "c",
                    "orders",
                    &[("eu-west-1", "https://eu", "half")],
                    0,
                ),
                "SecretMissing",
            ),
            (
                gt(
                    "shop",
                    "d",
                    "orders",
                    &[("us-east-1", "https://us", "eu-creds")],
                    0,
                ),
                "InvalidSpec",
            ),
            (gt("shop", "e", "orders", &[EU, EU], 0), "InvalidSpec"),
            (
                gt(
                    "shop",
                    "f",
                    "orders",
                    &[("eu-west-1", "ftp://eu", "eu-creds")],
                    0,
                ),
                "InvalidSpec",
            ),
        ];
        for (g, reason) in cases {
            let (file, outcomes) = build_replication_file(&Inputs {
                global_tables: std::slice::from_ref(&g),
                tables: &tables,
                secrets: &secrets,
                own_region: "us-east-1",
            });
            assert_eq!(file, ReplicationFile::new(), "{}", g.name_any());
            let problem = outcomes[0].problem.as_ref().unwrap();
            assert_eq!(problem.reason(), reason, "{}: {problem:?}", g.name_any());
        }
        let (_, outcomes) = build_replication_file(&Inputs {
            global_tables: &[gt(
                "shop",
                "c",
                "orders",
                &[("eu-west-1", "https://eu", "half")],
                0,
            )],
            tables: &tables,
            secrets: &secrets,
            own_region: "us-east-1",
        });
        assert_eq!(
            outcomes[0].problem.as_ref().unwrap().message(),
            "credentials Secret problem: Secret half has no secretAccessKey; nothing is replicated"
        );
    }

    #[test]
    fn two_global_tables_for_one_table_conflict() {
        let tables = [table("shop", "orders", "Orders")];
        let secrets = secrets();
        let (file, outcomes) = build_replication_file(&Inputs {
            global_tables: &[
                gt("shop", "first", "orders", &[EU], 0),
                gt("shop", "second", "orders", &[AP], 1),
            ],
            tables: &tables,
            secrets: &secrets,
            own_region: "us-east-1",
        });
        assert_eq!(file.peers.len(), 1);
        assert_eq!(
            outcomes[1].problem.as_ref().unwrap().reason(),
            "TableConflict"
        );
    }

    #[test]
    fn the_secret_has_the_contract_name_and_file() {
        let s =
            build_replication_secret("partita-system", "partita-gateway", &ReplicationFile::new());
        assert_eq!(s.metadata.name.as_deref(), Some(SECRET_NAME));
        let text = &s.data.unwrap()[FILE_NAME];
        let back: ReplicationFile = serde_json::from_slice(&text.0).unwrap();
        assert_eq!(back, ReplicationFile::new());
    }

    #[test]
    fn referenced_secrets_include_inbound() {
        let mut g = gt("shop", "orders", "orders", &[EU, AP], 0);
        g.spec.inbound_credentials_secret_ref = Some(LocalObjectRef {
            name: "inbound".into(),
        });
        let keys: Vec<_> = referenced_secrets(&[g]).into_iter().collect();
        assert_eq!(
            keys,
            [
                ("shop".to_string(), "ap-creds".to_string()),
                ("shop".to_string(), "eu-creds".to_string()),
                ("shop".to_string(), "inbound".to_string()),
            ]
        );
    }
}

//! The `AccessPolicy` resource: an IAM JSON policy document bound to users.
//!
//! A user is a Secret in the policy's namespace labelled
//! `partita.dev/user: <name>` with the keys `accessKeyId` and
//! `secretAccessKey`. The operator renders every policy and every user's keys
//! into the gateway's auth file (`partita_topology::auth`), so a changed
//! policy or a rotated key takes effect without restarting the gateway.

// `printcolumn(...)` repeats `type_ = ...` per column; that is the derive's syntax.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label that marks a Secret as a Partita user's credentials; its value is the user name.
pub const USER_LABEL: &str = "partita.dev/user";
/// Key of the access key id in a user Secret.
pub const ACCESS_KEY_ID_KEY: &str = "accessKeyId";
/// Key of the secret access key in a user Secret.
pub const SECRET_ACCESS_KEY_KEY: &str = "secretAccessKey";

/// An IAM-style policy bound to users.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "partita.dev",
    version = "v1alpha1",
    kind = "AccessPolicy",
    namespaced,
    status = "AccessPolicyStatus",
    shortname = "pap",
    category = "partita",
    doc = "An IAM JSON policy document bound to Partita users (labelled Secrets).",
    printcolumn(name = "Users", type_ = "string", json_path = ".status.boundUsers"),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicySpec {
    /// The IAM policy document, as JSON text (Version, Statement), exactly as on AWS.
    #[schemars(length(min = 2, max = 131072))]
    pub policy_document: String,
    /// Names of the users (values of the `partita.dev/user` label on Secrets
    /// in this namespace) the policy applies to.
    #[schemars(length(max = 1000))]
    pub users: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Users found, e.g. "2/3".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_users: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

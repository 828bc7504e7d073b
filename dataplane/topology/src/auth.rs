//! The gateway's auth file: users with access keys, bound to IAM policy
//! documents. The same model as `partita serve --auth FILE` (the security
//! issue): YAML or JSON, policies are ordinary IAM JSON documents.
//!
//! ```yaml
//! users:
//!   - name: alice
//!     accessKeyId: AKIAALICE0000000001
//!     secretAccessKey: alice-secret
//!     policies: [tenant-items]
//! policies:
//!   tenant-items: { Version: "2012-10-17", Statement: [...] }
//! ```
//!
//! The operator renders this file (as JSON) from `AccessPolicy` resources and
//! labelled Secrets into a Secret mounted into the gateway, which reloads it on
//! change. This module holds the shape only; policy evaluation belongs to the
//! data plane's API layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Conventional file name of the auth file inside its Secret and mount.
pub const FILE_NAME: &str = "auth.json";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthFile {
    #[serde(default)]
    pub users: Vec<AuthUser>,
    /// Policy name → IAM policy document (`Version`, `Statement`).
    #[serde(default)]
    pub policies: BTreeMap<String, serde_json::Value>,
}

/// One user and the policies bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthUser {
    pub name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub policies: Vec<String>,
}

impl AuthFile {
    /// Renders the file as pretty JSON with a trailing newline; users are
    /// sorted by name then access key, so equal inputs give equal bytes.
    pub fn to_json(&self) -> String {
        let mut sorted = self.clone();
        sorted
            .users
            .sort_by(|a, b| (&a.name, &a.access_key_id).cmp(&(&b.name, &b.access_key_id)));
        for u in &mut sorted.users {
            u.policies.sort();
            u.policies.dedup();
        }
        let mut s = serde_json::to_string_pretty(&sorted).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_shape() {
        let file = AuthFile {
            users: vec![AuthUser {
                name: "alice".into(),
                access_key_id: "AKIAALICE0000000001".into(),
                secret_access_key: "alice-secret".into(),
                policies: vec!["tenant-items".into()],
            }],
            policies: BTreeMap::from([(
                "tenant-items".to_string(),
                serde_json::json!({"Version": "2012-10-17", "Statement": []}),
            )]),
        };
        let v: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        assert_eq!(v["users"][0]["accessKeyId"], "AKIAALICE0000000001");
        assert_eq!(v["users"][0]["secretAccessKey"], "alice-secret");
        assert_eq!(v["policies"]["tenant-items"]["Version"], "2012-10-17");
        assert_eq!(serde_json::from_value::<AuthFile>(v).unwrap(), file);
    }
}

//! The credentials-and-policies model (`partita serve --auth FILE`), its
//! loading, validation and reloading.
//!
//! The file is YAML (or JSON, when it starts with `{`):
//!
//! ```yaml
//! users:
//!   - name: alice
//!     accessKeyId: AKIAALICE0000000001
//!     secretAccessKey: alice-secret
//!     sessionToken: optional-token      # temporary credentials
//!     accessKeys:                        # optional further keys
//!       - accessKeyId: AKIAALICE0000000002
//!         secretAccessKey: other-secret
//!     policies: [tenant-items]
//! policies:
//!   tenant-items: { Version: "2012-10-17", Statement: [...] }   # IAM JSON
//! ```
//!
//! [`AuthFile`] is the serde shape (the operator renders `AccessPolicy`
//! resources and Secrets into it, one `users` entry per key Secret, so a
//! name may appear in several entries, each with its own policies); [`AuthConfig`] is the validated,
//! compiled form the server uses. Secrets are [`Secret`]s: their `Debug`
//! is redacted and no error message quotes them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::policy::Policy;
use super::Authenticator;

/// The auth file as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthFile {
    #[serde(default)]
    pub users: Vec<UserSpec>,
    /// Named IAM policy documents.
    #[serde(default)]
    pub policies: BTreeMap<String, Value>,
}

/// One user: a name, one or more access keys and the policies attached.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSpec {
    pub name: String,
    /// The value of `${aws:userid}`; defaults to the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_keys: Vec<AccessKeySpec>,
    /// Names of entries of `policies`.
    #[serde(default)]
    pub policies: Vec<String>,
}

/// An access key of a user.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessKeySpec {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
}

/// A secret string: `Debug` and `Display` print `<redacted>`; it
/// deserializes from strings, numbers or booleans, so a type error never
/// echoes it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret's bytes, for signing and comparison only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Why an auth file was refused. The message names the line when known
/// and never quotes a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("line {line}: {message}")]
    AtLine { line: usize, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// A user as the server knows it after validation.
#[derive(Debug)]
pub struct User {
    pub name: String,
    pub user_id: String,
    /// The names of the attached policies, and the documents.
    pub policies: Vec<(String, Arc<Policy>)>,
}

/// An access key and who it belongs to.
#[derive(Debug)]
pub struct KeyEntry {
    pub user: Arc<User>,
    pub secret: Secret,
    pub session_token: Option<Secret>,
}

/// The validated configuration: access key id → key.
#[derive(Debug, Default)]
pub struct AuthConfig {
    keys: HashMap<String, KeyEntry>,
    users: usize,
    policies: usize,
}

impl AuthConfig {
    /// Returns the key with this id.
    pub fn key(&self, access_key_id: &str) -> Option<&KeyEntry> {
        self.keys.get(access_key_id)
    }

    /// Numbers of users, keys and policies (for logs).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.users, self.keys.len(), self.policies)
    }

    /// Parses and validates the text of an auth file (YAML, or JSON when it
    /// starts with `{`).
    pub fn parse(text: &str) -> Result<AuthConfig, ConfigError> {
        let file = parse_file(text)?;
        AuthConfig::build(&file, text)
    }

    /// Validates an [`AuthFile`]. `source` (the file text, may be empty) is
    /// used to name the line of an error.
    pub fn build(file: &AuthFile, source: &str) -> Result<AuthConfig, ConfigError> {
        let at = |needle: &str, message: String| match line_of(source, needle) {
            Some(line) => ConfigError::AtLine { line, message },
            None => ConfigError::Invalid(message),
        };
        let mut policies = HashMap::new();
        for (name, doc) in &file.policies {
            let policy = Policy::parse(doc)
                .map_err(|e| at(&format!("{name}:"), format!("policy '{name}': {e}")))?;
            policies.insert(name.clone(), Arc::new(policy));
        }
        let mut keys: HashMap<String, KeyEntry> = HashMap::new();
        for (i, u) in file.users.iter().enumerate() {
            let who = if u.name.is_empty() {
                format!("users[{i}]")
            } else {
                format!("user '{}'", u.name)
            };
            if u.name.is_empty() || u.name.len() > 64 || !u.name.chars().all(valid_name_char) {
                return Err(at(
                    &format!("name: {}", u.name),
                    format!("{who}: a name is 1 to 64 letters, digits or +=,.@_-"),
                ));
            }
            let mut attached = Vec::new();
            for p in &u.policies {
                let doc = policies.get(p).ok_or_else(|| {
                    at(
                        &format!("name: {}", u.name),
                        format!("{who}: policy '{p}' is not defined under policies"),
                    )
                })?;
                attached.push((p.clone(), doc.clone()));
            }
            let user = Arc::new(User {
                name: u.name.clone(),
                user_id: u.user_id.clone().unwrap_or_else(|| u.name.clone()),
                policies: attached,
            });
            let mut specs: Vec<(String, Secret, Option<Secret>)> = Vec::new();
            match (&u.access_key_id, &u.secret_access_key) {
                (Some(id), Some(secret)) => {
                    specs.push((id.clone(), secret.clone(), u.session_token.clone()))
                }
                (None, None) => {
                    if u.session_token.is_some() {
                        return Err(at(
                            &format!("name: {}", u.name),
                            format!("{who}: sessionToken without accessKeyId"),
                        ));
                    }
                }
                _ => {
                    return Err(at(
                        &format!("name: {}", u.name),
                        format!("{who}: accessKeyId and secretAccessKey go together"),
                    ))
                }
            }
            for k in &u.access_keys {
                specs.push((
                    k.access_key_id.clone(),
                    k.secret_access_key.clone(),
                    k.session_token.clone(),
                ));
            }
            if specs.is_empty() {
                return Err(at(
                    &format!("name: {}", u.name),
                    format!("{who}: has no access key"),
                ));
            }
            for (id, secret, token) in specs {
                if id.len() < 3 || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(at(
                        &id,
                        format!("{who}: access key id '{id}' must be 3 to 128 letters or digits"),
                    ));
                }
                if secret.expose().is_empty() {
                    return Err(at(
                        &id,
                        format!("{who}: access key '{id}' has an empty secret"),
                    ));
                }
                if token.as_ref().is_some_and(|t| t.expose().is_empty()) {
                    return Err(at(
                        &id,
                        format!("{who}: access key '{id}' has an empty session token"),
                    ));
                }
                if keys.contains_key(&id) {
                    return Err(at(&id, format!("{who}: access key '{id}' is used twice")));
                }
                keys.insert(
                    id,
                    KeyEntry {
                        user: user.clone(),
                        secret,
                        session_token: token,
                    },
                );
            }
        }
        Ok(AuthConfig {
            keys,
            users: file.users.len(),
            policies: policies.len(),
        })
    }

    /// Reads and validates an auth file.
    pub fn load(path: &Path) -> Result<AuthConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        AuthConfig::parse(&text)
    }
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// Parses the file text into the serde model, with the line of any error.
pub fn parse_file(text: &str) -> Result<AuthFile, ConfigError> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| ConfigError::AtLine {
            line: e.line(),
            message: strip_location(&e.to_string()),
        });
    }
    if text.trim().is_empty() {
        return Ok(AuthFile::default());
    }
    serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
        Some(loc) => ConfigError::AtLine {
            line: loc.line(),
            message: strip_location(&e.to_string()),
        },
        None => ConfigError::Invalid(e.to_string()),
    })
}

/// Drops the " at line X column Y" serde parsers append (the line is
/// reported separately).
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The 1-based number of the first line containing `needle`.
fn line_of(source: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    source
        .lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
}

/// Polls `path` every second and installs a changed, valid configuration
/// into `auth`; an invalid one is logged and the previous one kept. Runs
/// supervised (`partita_supervise`, task `auth_reload`): after a failure it
/// restarts and reloads the file at once.
pub fn spawn_reloader(path: PathBuf, auth: Arc<Authenticator>) -> tokio::task::JoinHandle<()> {
    crate::reload::spawn_reloader(
        "auth_reload",
        "auth file",
        path.clone(),
        |path: &Path| AuthConfig::load(path),
        move |config: AuthConfig| {
            let (users, keys, policies) = config.counts();
            auth.install(config);
            tracing::info!(path = %path.display(), users, keys, policies, "auth file reloaded");
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
users:
  - name: alice
    accessKeyId: AKIAALICE0000000001
    secretAccessKey: alice-secret
    policies: [tenant-items]
  - name: bob
    accessKeyId: AKIABOB00000000001
    secretAccessKey: 12345
    sessionToken: tok
    accessKeys:
      - accessKeyId: AKIABOB00000000002
        secretAccessKey: bob-2
    policies: [tenant-items]
policies:
  tenant-items:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
        Resource: "arn:aws:dynamodb:*:*:table/Tenants"
        Condition:
          ForAllValues:StringEquals:
            dynamodb:LeadingKeys: ["${aws:username}"]
"#;

    #[test]
    fn parses_the_documented_example() {
        let c = AuthConfig::parse(GOOD).expect("valid");
        assert_eq!(c.counts(), (2, 3, 1));
        let alice = c.key("AKIAALICE0000000001").expect("alice");
        assert_eq!(alice.user.name, "alice");
        assert_eq!(alice.user.user_id, "alice");
        assert_eq!(alice.secret.expose(), "alice-secret");
        let bob = c.key("AKIABOB00000000001").expect("bob");
        assert_eq!(bob.secret.expose(), "12345");
        assert_eq!(bob.session_token.as_ref().map(Secret::expose), Some("tok"));
        assert!(c.key("AKIABOB00000000002").is_some());
        assert!(c.key("nope").is_none());
    }

    #[test]
    fn json_is_accepted_and_round_trips() {
        let file = parse_file(GOOD).expect("yaml");
        let json = serde_json::to_string_pretty(&file).expect("json");
        let back = parse_file(&json).expect("json parses");
        assert_eq!(file, back);
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let c = AuthConfig::parse(GOOD).expect("valid");
        let debug = format!("{c:?}");
        assert!(!debug.contains("alice-secret"), "{debug}");
        assert!(!debug.contains("12345"), "{debug}");
        assert!(debug.contains("<redacted>"));
        let file = parse_file(GOOD).expect("yaml");
        assert!(!format!("{file:?}").contains("alice-secret"));
        // A secret of the wrong shape is reported without its value.
        let bad = "users:\n  - name: a\n    accessKeyId: AKIA1\n    secretAccessKey: [s3cr3t]\n";
        let e = AuthConfig::parse(bad).unwrap_err().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("users:\n  - name: alice\n    bogus: 1\n", 3, "unknown field `bogus`"),
            ("users:\n  - name: a\n    accessKeyId: AKIA1\n    secretAccessKey: s\n    policies: [missing]\n", 2, "policy 'missing' is not defined"),
            ("users: [\n", 2, ""),
            (
                "policies:\n  p1:\n    Version: \"2012-10-17\"\n    Statement:\n      - Effect: Alow\n        Action: \"*\"\n        Resource: \"*\"\n",
                2,
                "Statement[0].Effect: must be \"Allow\" or \"Deny\"",
            ),
            (
                "users:\n  - name: a\n    accessKeyId: AKIA1\n    secretAccessKey: s\n  - name: b\n    accessKeyId: AKIA1\n    secretAccessKey: t\n",
                3,
                "access key 'AKIA1' is used twice",
            ),
            ("{\n \"users\": 3\n}", 2, "invalid type"),
        ];
        for (text, line, needle) in cases {
            match AuthConfig::parse(text) {
                Err(ConfigError::AtLine { line: l, message }) => {
                    assert_eq!(l, *line, "{text}: {message}");
                    assert!(message.contains(needle), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn user_rules() {
        for bad in [
            "users:\n  - name: a\n    policies: []\n",
            "users:\n  - name: a\n    accessKeyId: AKIA1\n",
            "users:\n  - name: 'a b'\n    accessKeyId: AKIA1\n    secretAccessKey: s\n",
            "users:\n  - name: a\n    accessKeyId: AKIA1\n    secretAccessKey: ''\n",
        ] {
            assert!(AuthConfig::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(AuthConfig::parse("").expect("empty").counts(), (0, 0, 0));
        // One entry per key, as the operator renders user Secrets: the same
        // name may appear several times, each entry with its own policies.
        let c = AuthConfig::parse(
            r#"{"users": [
                {"name": "alice", "accessKeyId": "AKIA1", "secretAccessKey": "s1", "policies": ["apps/p"]},
                {"name": "alice", "accessKeyId": "AKIA2", "secretAccessKey": "s2", "policies": []}],
              "policies": {"apps/p": {"Version": "2012-10-17", "Statement": []}}}"#,
        )
        .expect("operator shape");
        assert_eq!(c.key("AKIA1").map(|k| k.user.policies.len()), Some(1));
        assert_eq!(c.key("AKIA2").map(|k| k.user.policies.len()), Some(0));
        assert_eq!(c.key("AKIA2").map(|k| k.user.name.as_str()), Some("alice"));
    }
}

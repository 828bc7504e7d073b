//! Authentication (SigV4) and authorization (IAM identity policies).
//!
//! Owns: verifying who sent a request ([`sigv4`]), the credentials and
//! policies model and its reloading ([`config`]), IAM policy documents
//! ([`policy`]) and the mapping of a decoded request onto IAM actions,
//! resources and condition keys ([`enforce`]). Enforcement is central:
//! `Api::call_as` authorizes every request here before dispatching it, so
//! operation modules know nothing about auth.
//!
//! Two modes: *open* (no auth file; any credentials are accepted, as
//! DynamoDB Local does) and *enforcing* (an [`AuthConfig`] is installed;
//! every request must be signed by a known key and allowed by its user's
//! policies). The configuration can be replaced at run time
//! ([`Authenticator::install`]); requests in flight keep the one they
//! started with.

pub mod config;
pub mod enforce;
pub mod policy;
pub mod sigv4;

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;

pub use config::{AuthConfig, AuthFile, ConfigError, Secret, User};
use sigv4::{HttpParts, SigError};

use crate::error::{ApiError, ErrorKind};

/// The service name requests must be signed for.
pub const SERVICE: &str = "dynamodb";

/// Verifies signatures against the installed configuration.
#[derive(Debug, Default)]
pub struct Authenticator {
    config: RwLock<Option<Arc<AuthConfig>>>,
}

/// An authenticated user.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: Arc<User>,
    /// The access key id the request was signed with.
    pub access_key_id: String,
}

/// Who is calling and how: what authorization needs besides the request.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// None in open mode (no authorization).
    pub principal: Option<Principal>,
    /// True over TLS (`aws:SecureTransport`).
    pub secure: bool,
}

impl Authenticator {
    /// Open mode: any credentials are accepted.
    pub fn open() -> Authenticator {
        Authenticator::default()
    }

    /// Enforcing mode with `config`.
    pub fn enforcing(config: AuthConfig) -> Authenticator {
        Authenticator {
            config: RwLock::new(Some(Arc::new(config))),
        }
    }

    /// Replaces the configuration (and turns enforcing on).
    pub fn install(&self, config: AuthConfig) {
        let mut guard = self.config.write().unwrap_or_else(|e| e.into_inner());
        *guard = Some(Arc::new(config));
    }

    /// True when a configuration is installed.
    pub fn is_enforcing(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<Arc<AuthConfig>> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Authenticates a request: None in open mode, else the principal
    /// whose key signed it, or the error DynamoDB would return.
    pub fn authenticate(
        &self,
        parts: &HttpParts<'_>,
        body: &[u8],
        region: &str,
    ) -> Result<Option<Principal>, ApiError> {
        let Some(config) = self.current() else {
            return Ok(None);
        };
        authenticate_with(&config, parts, body, region, now_secs())
            .map(Some)
            .map_err(ApiError::from)
    }
}

/// Authenticates against `config` at time `now` (seconds since the epoch).
pub fn authenticate_with(
    config: &AuthConfig,
    parts: &HttpParts<'_>,
    body: &[u8],
    region: &str,
    now: i64,
) -> Result<Principal, SigError> {
    let req = sigv4::parse_request(parts)?;
    sigv4::check_scope(&req, region, SERVICE)?;
    let key = config
        .key(&req.credential.access_key)
        .ok_or(SigError::UnknownKey)?;
    match (&key.session_token, &req.session_token) {
        (None, None) => {}
        (Some(want), Some(got))
            if want.expose().len() == got.len()
                && bool::from(want.expose().as_bytes().ct_eq(got.as_bytes())) => {}
        _ => return Err(SigError::UnknownKey),
    }
    sigv4::check_time(&req, now)?;
    sigv4::verify_signature(&req, parts, body, key.secret.expose().as_bytes())?;
    Ok(Principal {
        user: key.user.clone(),
        access_key_id: req.credential.access_key,
    })
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl From<SigError> for ApiError {
    fn from(e: SigError) -> ApiError {
        let kind = match e {
            SigError::Missing => ErrorKind::MissingAuthenticationToken,
            SigError::Incomplete(_) => ErrorKind::IncompleteSignature,
            SigError::Invalid(_) => ErrorKind::InvalidSignature,
            SigError::UnknownKey => ErrorKind::UnrecognizedClient,
        };
        ApiError::new(kind, e.to_string())
    }
}

#[cfg(test)]
#[path = "fuzz_tests.rs"]
mod fuzz_tests;

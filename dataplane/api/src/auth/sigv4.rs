//! AWS Signature Version 4: parsing the `Authorization` header and presigned
//! query strings, building the canonical request and checking the signature.
//!
//! Written from the SigV4 specification: canonical request = method, URI
//! (normalized, every segment percent-encoded again, as for every service but
//! S3), canonical query string (pairs encoded and sorted, without
//! `X-Amz-Signature`), the signed headers (trimmed, inner runs of spaces
//! collapsed, repeated headers joined with `,`), the `SignedHeaders` list and
//! the hex SHA-256 of the body. The string to sign names the algorithm, the
//! request time, the credential scope and the hash of the canonical request;
//! the key is derived by HMAC-SHA256 over date, region, service and
//! `aws4_request`. Signatures are compared in constant time.
//!
//! The payload hash is always computed from the body received: a client
//! cannot opt out of body signing with `UNSIGNED-PAYLOAD`.
//!
//! Every function here is total: any header content yields a typed
//! [`SigError`], never a panic.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Allowed difference between the request time and the server's clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
/// The longest validity a presigned request may ask for (7 days).
pub const MAX_PRESIGNED_EXPIRES: i64 = 604_800;

/// Why a request's authentication was rejected. Each variant maps to one
/// DynamoDB error type; the message is AWS's wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No Authorization header and no presigned query string.
    #[error("Request is missing Authentication Token")]
    Missing,
    /// The Authorization header or the query string is malformed.
    #[error("{0}")]
    Incomplete(String),
    /// Scope, time or signature do not check out.
    #[error("{0}")]
    Invalid(String),
    /// The access key (or session token) is not known.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
}

/// The message of a signature mismatch, as AWS words it.
pub const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// The parts of an HTTP request that take part in signing. Header names
/// must be lower-case (hyper delivers them so).
#[derive(Clone, Debug)]
pub struct HttpParts<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The query string as sent, without `?` (empty when none).
    pub query: &'a str,
    pub headers: Vec<(&'a str, &'a [u8])>,
}

impl HttpParts<'_> {
    /// Returns the first value of header `name` (lower-case) as text.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// The credential scope: `<key>/<date>/<region>/<service>/aws4_request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub terminator: String,
}

impl Credential {
    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.date, self.region, self.service, self.terminator
        )
    }
}

/// The fields of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationHeader {
    pub credential: Credential,
    /// As sent, e.g. `content-type;host;x-amz-date`.
    pub signed_headers: String,
    pub signature: String,
}

/// A request's signature claim, from the header or the query string.
#[derive(Clone, Debug)]
pub struct SignedRequest {
    pub credential: Credential,
    pub signed_headers: String,
    pub signature: String,
    /// The request time as signed (`YYYYMMDDTHHMMSSZ`).
    pub amz_date: String,
    /// The request time in seconds since the Unix epoch.
    pub timestamp: i64,
    /// `X-Amz-Expires` of a presigned request.
    pub expires: Option<i64>,
    /// `X-Amz-Security-Token`, from the header or the query string.
    pub session_token: Option<String>,
    pub presigned: bool,
}

/// Parses an Authorization header value. Errors are
/// IncompleteSignatureException messages in AWS's wording.
pub fn parse_authorization(value: &str) -> Result<AuthorizationHeader, SigError> {
    let trimmed = value.trim();
    let (algorithm, rest) = match trimmed.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((a, r)) => (a, r),
        None => (trimmed, ""),
    };
    if algorithm != ALGORITHM {
        if algorithm.starts_with("AWS4-") {
            return Err(SigError::Incomplete(format!(
                "Unsupported AWS 'algorithm': '{}'.",
                truncate(algorithm, 64)
            )));
        }
        return Err(SigError::Incomplete(format!(
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization={}",
            truncate(trimmed, 256)
        )));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            let hashed = BASE64.encode(Sha256::digest(value.as_bytes()));
            return Err(SigError::Incomplete(format!(
                "Invalid key=value pair (missing equal-sign) in Authorization header (hashed with SHA-256 and encoded with Base64): '{hashed}'."
            )));
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed_headers = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let mut missing = String::new();
    for (name, v) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed_headers),
    ] {
        if v.is_none_or(|s| s.is_empty()) {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if !missing.is_empty() {
        return Err(SigError::Incomplete(format!(
            "{missing}Authorization={}",
            truncate(trimmed, 256)
        )));
    }
    Ok(AuthorizationHeader {
        credential: parse_credential(credential.unwrap_or_default())?,
        signed_headers: signed_headers.unwrap_or_default().to_string(),
        signature: signature.unwrap_or_default().to_string(),
    })
}

/// Parses `<key>/<date>/<region>/<service>/<terminator>`.
pub fn parse_credential(value: &str) -> Result<Credential, SigError> {
    let parts: Vec<&str> = value.split('/').collect();
    match parts.as_slice() {
        [key, date, region, service, terminator] if !key.is_empty() => Ok(Credential {
            access_key: key.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            terminator: terminator.to_string(),
        }),
        _ => Err(SigError::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
            truncate(value, 256)
        ))),
    }
}

/// Extracts the signature claim of a request: the Authorization header, or
/// else the presigned query parameters.
pub fn parse_request(parts: &HttpParts<'_>) -> Result<SignedRequest, SigError> {
    let query = parse_query(parts.query);
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(auth) = parts.header("authorization") {
        let header = parse_authorization(auth)?;
        let (amz_date, timestamp) = request_time(parts).ok_or_else(|| {
            SigError::Incomplete(format!(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={}",
                truncate(auth.trim(), 256)
            ))
        })?;
        let session_token = parts
            .header("x-amz-security-token")
            .map(str::to_string)
            .or_else(|| param("X-Amz-Security-Token").map(str::to_string));
        return Ok(SignedRequest {
            credential: header.credential,
            signed_headers: header.signed_headers,
            signature: header.signature,
            amz_date,
            timestamp,
            expires: None,
            session_token,
            presigned: false,
        });
    }
    if parts.headers.iter().any(|(k, _)| *k == "authorization") {
        // Present but not UTF-8.
        return Err(SigError::Incomplete(
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.".to_string(),
        ));
    }
    let Some(algorithm) = param("X-Amz-Algorithm") else {
        return Err(SigError::Missing);
    };
    if algorithm != ALGORITHM {
        return Err(SigError::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{}'.",
            truncate(algorithm, 64)
        )));
    }
    let mut missing = String::new();
    for name in [
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
    ] {
        if param(name).is_none_or(str::is_empty) {
            missing.push_str(&format!(
                "AWS query-string parameters must include '{name}'. "
            ));
        }
    }
    if !missing.is_empty() {
        return Err(SigError::Incomplete(format!(
            "{missing}Re-examine the query-string parameters."
        )));
    }
    let credential = parse_credential(param("X-Amz-Credential").unwrap_or_default())?;
    let amz_date = param("X-Amz-Date").unwrap_or_default().to_string();
    let timestamp = parse_amz_date(&amz_date).ok_or_else(|| {
        SigError::Incomplete(format!(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\", got '{}'",
            truncate(&amz_date, 64)
        ))
    })?;
    let expires = match param("X-Amz-Expires") {
        None => None,
        Some(e) => match e.parse::<i64>() {
            Ok(n) if (1..=MAX_PRESIGNED_EXPIRES).contains(&n) => Some(n),
            Ok(_) => {
                return Err(SigError::Incomplete(format!(
                    "X-Amz-Expires must be between 1 and {MAX_PRESIGNED_EXPIRES} seconds"
                )))
            }
            Err(_) => {
                return Err(SigError::Incomplete(
                    "X-Amz-Expires should be a number".to_string(),
                ))
            }
        },
    };
    Ok(SignedRequest {
        credential,
        signed_headers: param("X-Amz-SignedHeaders").unwrap_or_default().to_string(),
        signature: param("X-Amz-Signature").unwrap_or_default().to_string(),
        amz_date,
        timestamp,
        expires,
        session_token: param("X-Amz-Security-Token")
            .map(str::to_string)
            .or_else(|| parts.header("x-amz-security-token").map(str::to_string)),
        presigned: true,
    })
}

/// Checks the credential scope against the server's region and service, and
/// its date against the request time.
pub fn check_scope(req: &SignedRequest, region: &str, service: &str) -> Result<(), SigError> {
    let c = &req.credential;
    if c.terminator != "aws4_request" {
        return Err(SigError::Invalid(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
            truncate(&c.terminator, 64)
        )));
    }
    if c.service != service {
        return Err(SigError::Invalid(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    if c.region != region {
        return Err(SigError::Invalid(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            truncate(&c.region, 64)
        )));
    }
    let day = req.amz_date.get(..8).unwrap_or_default();
    if c.date != day {
        return Err(SigError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            truncate(&c.date, 64),
            day,
            req.amz_date
        )));
    }
    Ok(())
}

/// Checks the request time against `now` (seconds since the epoch): within
/// 15 minutes either way, and for presigned requests not past
/// `X-Amz-Date + X-Amz-Expires`.
pub fn check_time(req: &SignedRequest, now: i64) -> Result<(), SigError> {
    let t = req.timestamp;
    if t > now + MAX_SKEW_SECS {
        return Err(SigError::Invalid(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            req.amz_date,
            format_amz_date(now + MAX_SKEW_SECS),
            format_amz_date(now)
        )));
    }
    match req.expires {
        Some(expires) => {
            if t + expires < now {
                return Err(SigError::Invalid(format!(
                    "Signature expired: {} is now earlier than {} ({} - {} sec.)",
                    req.amz_date,
                    format_amz_date(now - expires),
                    format_amz_date(now),
                    expires
                )));
            }
        }
        None => {
            if t < now - MAX_SKEW_SECS {
                return Err(SigError::Invalid(format!(
                    "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                    req.amz_date,
                    format_amz_date(now - MAX_SKEW_SECS),
                    format_amz_date(now)
                )));
            }
        }
    }
    Ok(())
}

/// Recomputes the signature with `secret` and compares it in constant time.
pub fn verify_signature(
    req: &SignedRequest,
    parts: &HttpParts<'_>,
    body: &[u8],
    secret: &[u8],
) -> Result<(), SigError> {
    let names: Vec<&str> = req.signed_headers.split(';').collect();
    if !names.iter().any(|n| n.eq_ignore_ascii_case("host")) {
        return Err(SigError::Invalid(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_string(),
        ));
    }
    let canonical = canonical_request(parts, &req.signed_headers, body, req.presigned);
    let to_sign = string_to_sign(&req.amz_date, &req.credential.scope(), &canonical);
    let key = signing_key(
        secret,
        &req.credential.date,
        &req.credential.region,
        &req.credential.service,
    );
    let expected = hex(&hmac(&key, to_sign.as_bytes()));
    let given = req.signature.as_bytes();
    if expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given)) {
        Ok(())
    } else {
        Err(SigError::Invalid(MISMATCH.to_string()))
    }
}

/// Builds the canonical request. `signed_headers` is used as sent.
pub fn canonical_request(
    parts: &HttpParts<'_>,
    signed_headers: &str,
    body: &[u8],
    presigned: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(parts.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(parts.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(parts.query, presigned).as_bytes());
    out.push(b'\n');
    for name in signed_headers.split(';') {
        let lower = name.to_ascii_lowercase();
        out.extend_from_slice(lower.as_bytes());
        out.push(b':');
        let mut first = true;
        for (_, value) in parts.headers.iter().filter(|(k, _)| *k == lower) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&canonical_header_value(value));
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(hex(&Sha256::digest(body)).as_bytes());
    out
}

/// Builds the string to sign from the canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical))
    )
}

/// Derives the signing key for a date, region and service.
pub fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k_secret = Vec::with_capacity(secret.len() + 4);
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret);
    let k_date = hmac(&k_secret, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Signs requests the way an SDK does (used by tests and tools).
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub access_key: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`
    pub amz_date: &'a str,
}

impl std::fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("amz_date", &self.amz_date)
            .finish()
    }
}

impl Signer<'_> {
    fn scope(&self) -> String {
        let date = self.amz_date.get(..8).unwrap_or_default();
        format!("{date}/{}/{}/aws4_request", self.region, self.service)
    }

    fn signature(&self, canonical: &[u8]) -> String {
        let date = self.amz_date.get(..8).unwrap_or_default();
        let to_sign = string_to_sign(self.amz_date, &self.scope(), canonical);
        let key = signing_key(self.secret.as_bytes(), date, self.region, self.service);
        hex(&hmac(&key, to_sign.as_bytes()))
    }

    /// Returns the Authorization header value for a request whose headers
    /// already include every header in `signed_headers`.
    pub fn authorization(
        &self,
        parts: &HttpParts<'_>,
        body: &[u8],
        signed_headers: &str,
    ) -> String {
        let canonical = canonical_request(parts, signed_headers, body, false);
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={signed_headers}, Signature={}",
            self.access_key,
            self.scope(),
            self.signature(&canonical)
        )
    }

    /// Returns the query string of a presigned request: `parts.query` plus
    /// the X-Amz-* parameters and the signature.
    pub fn presign(
        &self,
        parts: &HttpParts<'_>,
        body: &[u8],
        signed_headers: &str,
        expires: i64,
    ) -> String {
        let mut query = String::from(parts.query);
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!(
            "X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={}&X-Amz-Date={}&X-Amz-Expires={expires}&X-Amz-SignedHeaders={}",
            uri_encode(format!("{}/{}", self.access_key, self.scope()).as_bytes()),
            self.amz_date,
            uri_encode(signed_headers.as_bytes()),
        ));
        let with_params = HttpParts {
            query: &query,
            ..parts.clone()
        };
        let canonical = canonical_request(&with_params, signed_headers, body, true);
        let signature = self.signature(&canonical);
        format!("{query}&X-Amz-Signature={signature}")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // HMAC accepts keys of any length; this cannot fail.
    if let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        mac.update(data);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Trims a header value and collapses inner runs of spaces to one.
fn canonical_header_value(value: &[u8]) -> Vec<u8> {
    let trimmed = value.trim_ascii();
    let mut out = Vec::with_capacity(trimmed.len());
    let mut last_space = false;
    for &b in trimmed {
        let space = b == b' ' || b == b'\t';
        if space {
            if !last_space {
                out.push(b' ');
            }
        } else {
            out.push(b);
        }
        last_space = space;
    }
    out
}

/// Normalizes the path (dot segments removed) and percent-encodes each
/// segment of the path as sent (so `%20` becomes `%2520`).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() || path == "/" {
        return "/".to_string();
    }
    let mut segments: Vec<&str> = Vec::new();
    let raw: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let last = raw.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in raw.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                segments.pop();
                trailing_slash = i == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len() + 8);
    for seg in &segments {
        out.push('/');
        out.push_str(&uri_encode(seg.as_bytes()));
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// Decodes, re-encodes and sorts the query string's pairs.
fn canonical_query(query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), Vec::new()),
        })
        .filter(|(k, _)| !(presigned && k == b"X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes the query string into name/value pairs (for reading the
/// presigned parameters).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                String::from_utf8_lossy(&percent_decode(k)).into_owned(),
                String::from_utf8_lossy(&percent_decode(v)).into_owned(),
            )
        })
        .collect()
}

/// Percent-encodes everything but the unreserved characters
/// `A-Z a-z 0-9 - _ . ~`, with upper-case hex.
fn uri_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Returns the signed request time: `X-Amz-Date`, else the `Date` header.
fn request_time(parts: &HttpParts<'_>) -> Option<(String, i64)> {
    if let Some(d) = parts.header("x-amz-date") {
        let t = parse_amz_date(d.trim())?;
        return Some((d.trim().to_string(), t));
    }
    let t = parse_http_date(parts.header("date")?.trim())?;
    Some((format_amz_date(t), t))
}

/// Parses `YYYYMMDDTHHMMSSZ` into seconds since the epoch.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    civil_to_epoch(
        num(0..4)?,
        num(4..6)?,
        num(6..8)?,
        num(9..11)?,
        num(11..13)?,
        num(13..15)?,
    )
}

/// Parses an RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let hms: Vec<&str> = time.split(':').collect();
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    let p = |x: &str| -> Option<i64> {
        if x.is_empty() || x.len() > 4 || !x.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        x.parse().ok()
    };
    civil_to_epoch(p(year)?, month, p(day)?, p(h)?, p(m)?, p(sec)?)
}

fn civil_to_epoch(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (proleptic Gregorian), after Howard Hinnant.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Formats seconds since the epoch as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;

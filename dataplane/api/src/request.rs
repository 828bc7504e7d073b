//! Typed access to the members of a JSON request, and DynamoDB's
//! "N validation errors detected" constraint reports.

use serde_json::{Map as JsonMap, Value};

use crate::error::ApiError;

/// A decoded JSON request body.
#[derive(Debug, Default)]
pub struct Request {
    body: JsonMap<String, Value>,
}

impl Request {
    /// Parses a request body; malformed JSON is a SerializationException.
    pub fn parse(bytes: &[u8]) -> Result<Request, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Request::default());
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(body)) => Ok(Request { body }),
            Ok(_) => Err(ApiError::serialization(
                "Start of structure or map found where not expected",
            )),
            Err(_) => Err(ApiError::serialization(
                "Unexpected end-of-input while parsing request body",
            )),
        }
    }

    /// Wraps an already-decoded JSON object (a nested request such as one
    /// action of a transaction).
    pub fn from_object(body: JsonMap<String, Value>) -> Request {
        Request { body }
    }

    /// Returns every member (for authorization, which reads the request as
    /// a whole).
    pub fn as_object(&self) -> &JsonMap<String, Value> {
        &self.body
    }

    /// Sets a member (the capacity layer asks every operation for its
    /// consumed capacity this way).
    pub(crate) fn set_member(&mut self, name: &str, value: Value) {
        self.body.insert(name.to_string(), value);
    }

    /// Returns a member, treating JSON null as absent.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.body.get(name).filter(|v| !v.is_null())
    }

    /// Returns true when the member is present and not null.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Returns a string member.
    pub fn str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(other, "String")),
        }
    }

    /// Returns a boolean member.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(other, "Boolean")),
        }
    }

    /// Returns an integer member.
    pub fn i64(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) => Ok(Some(v)),
                None => Err(ApiError::serialization(format!(
                    "Unexpected value for {name}: not an integer"
                ))),
            },
            Some(other) => Err(wrong_type(other, "Integer")),
        }
    }

    /// Returns an object member.
    pub fn object(&self, name: &str) -> Result<Option<&JsonMap<String, Value>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(wrong_type(other, "Structure")),
        }
    }

    /// Returns an array member.
    pub fn array(&self, name: &str) -> Result<Option<&Vec<Value>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(other) => Err(wrong_type(other, "List")),
        }
    }
}

/// The SerializationException for a member of the wrong JSON type.
pub fn wrong_type(value: &Value, expected: &str) -> ApiError {
    let found = match value {
        Value::Null => "NULL_VALUE",
        Value::Bool(true) => "TRUE_VALUE",
        Value::Bool(false) => "FALSE_VALUE",
        Value::Number(_) => "NUMBER_VALUE",
        Value::String(_) => "STRING_VALUE",
        Value::Array(_) => {
            return ApiError::serialization("Start of list found where not expected")
        }
        Value::Object(_) => {
            return ApiError::serialization("Start of structure or map found where not expected")
        }
    };
    ApiError::serialization(format!("{found} cannot be converted to {expected}"))
}

/// Collects constraint violations and renders them as DynamoDB does:
/// "2 validation errors detected: Value 'x' at 'a' failed to satisfy
/// constraint: ...; Value null at 'b' failed to satisfy constraint: ...".
#[derive(Debug, Default)]
pub struct Violations {
    entries: Vec<String>,
}

impl Violations {
    pub fn new() -> Violations {
        Violations::default()
    }

    /// Records that `value` (already rendered, e.g. `'ab'` or `null`) at
    /// `path` failed `constraint`.
    pub fn push(&mut self, value: &str, path: &str, constraint: &str) {
        self.entries.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// Records a violation whose value DynamoDB does not print.
    pub fn push_without_value(&mut self, path: &str, constraint: &str) {
        self.entries.push(format!(
            "Value at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// Records a missing required member.
    pub fn push_null(&mut self, path: &str) {
        self.push("null", path, "Member must not be null");
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the ValidationException reporting every violation, if any.
    pub fn into_result(self) -> Result<(), ApiError> {
        match self.entries.len() {
            0 => Ok(()),
            n => {
                let plural = if n == 1 { "error" } else { "errors" };
                Err(ApiError::validation(format!(
                    "{n} validation {plural} detected: {}",
                    self.entries.join("; ")
                )))
            }
        }
    }
}

/// Renders a string value as DynamoDB quotes it in violation messages.
pub fn quoted(s: &str) -> String {
    format!("'{s}'")
}

/// Checks a table or index name against DynamoDB's length (`min`..=`max`)
/// and character constraints, recording violations at `path`.
pub fn check_name(
    violations: &mut Violations,
    name: Option<&str>,
    path: &str,
    min: usize,
    max: usize,
) {
    let Some(name) = name else {
        violations.push_null(path);
        return;
    };
    if name.len() < min {
        violations.push(
            &quoted(name),
            path,
            &format!("Member must have length greater than or equal to {min}"),
        );
    }
    if name.len() > max {
        violations.push(
            &quoted(name),
            path,
            &format!("Member must have length less than or equal to {max}"),
        );
    }
    if !name.is_empty()
        && !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        violations.push(
            &quoted(name),
            path,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_render_like_dynamodb() {
        let mut v = Violations::new();
        check_name(&mut v, Some("ab"), "tableName", 3, 255);
        let err = v.into_result().unwrap_err();
        assert_eq!(
            err.message,
            "1 validation error detected: Value 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3"
        );
        let mut v = Violations::new();
        check_name(&mut v, Some("a!"), "tableName", 3, 255);
        let err = v.into_result().unwrap_err();
        assert!(
            err.message.starts_with("2 validation errors detected: "),
            "{}",
            err.message
        );
        assert!(err.message.contains("; Value 'a!'"));
        assert!(Violations::new().into_result().is_ok());
    }

    #[test]
    fn malformed_bodies_are_serialization_errors() {
        for body in [&b"{"[..], b"[1]", b"nope", b"{\"a\":}"] {
            let err = Request::parse(body).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Serialization);
        }
        let req = Request::parse(br#"{"TableName": 5, "Limit": "x"}"#).unwrap();
        assert!(req.str("TableName").is_err());
        assert!(req.i64("Limit").is_err());
        assert_eq!(req.str("Missing").unwrap(), None);
    }
}

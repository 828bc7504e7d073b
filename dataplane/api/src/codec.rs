//! DynamoDB's JSON encoding of attribute values: `{"S": "x"}`, `{"N": "1"}`, ...
//!
//! Decoding validates what DynamoDB validates about a value on its own (one
//! type per value, sets not empty and without duplicates, NULL true, numbers
//! valid, nesting depth) with DynamoDB's messages. Checks that need a table's
//! schema (key types, empty keys) live with the operations.

use std::collections::{BTreeSet, HashMap};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use partita_model::{limits, AttributeValue, Item, Map, Number};
use serde_json::{Map as JsonMap, Value};

use crate::error::ApiError;

const INVALID: &str = "One or more parameter values were invalid: ";

/// Decodes one attribute value.
pub fn value_from_json(json: &Value) -> Result<AttributeValue, ApiError> {
    decode(json, 0)
}

/// Decodes an item (a JSON object of attribute name → value).
pub fn item_from_json(json: &Value) -> Result<Item, ApiError> {
    match json {
        Value::Object(obj) => decode_map(obj, 0),
        Value::Null => Ok(Item::new()),
        _ => Err(not_a_structure()),
    }
}

/// Decodes a map of placeholder → value (ExpressionAttributeValues).
pub fn values_from_json(json: &Value) -> Result<HashMap<String, AttributeValue>, ApiError> {
    match json {
        Value::Object(obj) => {
            let mut out = HashMap::with_capacity(obj.len());
            for (k, v) in obj {
                out.insert(k.clone(), decode(v, 0)?);
            }
            Ok(out)
        }
        _ => Err(not_a_structure()),
    }
}

fn not_a_structure() -> ApiError {
    ApiError::serialization("Start of structure or map found where not expected")
}

fn decode_map(obj: &JsonMap<String, Value>, depth: usize) -> Result<Map, ApiError> {
    let mut out = Map::new();
    for (k, v) in obj {
        out.insert(k.clone(), decode(v, depth)?);
    }
    Ok(out)
}

fn decode(json: &Value, depth: usize) -> Result<AttributeValue, ApiError> {
    let obj = match json {
        Value::Object(obj) => obj,
        Value::Null => return Err(empty_value()),
        _ => return Err(not_a_structure()),
    };
    let mut found: Option<(&str, &Value)> = None;
    for (k, v) in obj {
        if v.is_null() {
            continue;
        }
        if found.is_some() {
            return Err(ApiError::validation(
                "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
            ));
        }
        found = Some((k.as_str(), v));
    }
    let Some((tag, v)) = found else {
        return Err(empty_value());
    };
    match tag {
        "S" => Ok(AttributeValue::S(string(v)?)),
        "N" => Ok(AttributeValue::N(number(v)?)),
        "B" => Ok(AttributeValue::B(binary(v)?)),
        "BOOL" => match v {
            Value::Bool(b) => Ok(AttributeValue::Bool(*b)),
            _ => Err(ApiError::serialization(
                "Unexpected token received from parser",
            )),
        },
        "NULL" => match v {
            Value::Bool(true) => Ok(AttributeValue::Null),
            Value::Bool(false) => Err(ApiError::validation(format!(
                "{INVALID}Null attribute value types must have the value of true"
            ))),
            _ => Err(ApiError::serialization(
                "Unexpected token received from parser",
            )),
        },
        "M" => {
            check_depth(depth)?;
            match v {
                Value::Object(m) => Ok(AttributeValue::M(decode_map(m, depth + 1)?)),
                _ => Err(not_a_structure()),
            }
        }
        "L" => {
            check_depth(depth)?;
            let items = array(v)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(decode(item, depth + 1)?);
            }
            Ok(AttributeValue::L(out))
        }
        "SS" => {
            let items = array(v)?;
            if items.is_empty() {
                return Err(ApiError::validation(format!(
                    "{INVALID}An string set  may not be empty"
                )));
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(string(item)?);
            }
            check_duplicates(out.iter().cloned(), || out.join(", "))?;
            Ok(AttributeValue::Ss(out))
        }
        "NS" => {
            let items = array(v)?;
            if items.is_empty() {
                return Err(ApiError::validation(format!(
                    "{INVALID}An number set  may not be empty"
                )));
            }
            let mut raw = Vec::with_capacity(items.len());
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let text = string(item)?;
                out.push(parse_number(&text)?);
                raw.push(text);
            }
            check_duplicates(out.iter().cloned(), || raw.join(", "))?;
            Ok(AttributeValue::Ns(out))
        }
        "BS" => {
            let items = array(v)?;
            if items.is_empty() {
                return Err(ApiError::validation(format!(
                    "{INVALID}Binary sets should not be empty"
                )));
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(binary(item)?);
            }
            check_duplicates(out.iter().cloned(), || {
                out.iter()
                    .map(|b| BASE64.encode(b))
                    .collect::<Vec<_>>()
                    .join(", ")
            })?;
            Ok(AttributeValue::Bs(out))
        }
        _ => Err(empty_value()),
    }
}

fn empty_value() -> ApiError {
    ApiError::validation(
        "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes",
    )
}

fn check_depth(depth: usize) -> Result<(), ApiError> {
    // The item itself is the first of the 32 levels.
    if depth + 1 >= limits::MAX_NESTING_DEPTH {
        return Err(ApiError::validation(
            "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit",
        ));
    }
    Ok(())
}

fn check_duplicates<T: Ord>(
    values: impl Iterator<Item = T>,
    render: impl FnOnce() -> String,
) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for v in values {
        if !seen.insert(v) {
            return Err(ApiError::validation(format!(
                "{INVALID}Input collection [{}] contains duplicates.",
                render()
            )));
        }
    }
    Ok(())
}

fn string(v: &Value) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(_) => Err(ApiError::serialization(
            "NUMBER_VALUE cannot be converted to String",
        )),
        Value::Bool(_) => Err(ApiError::serialization(
            "TRUE_VALUE cannot be converted to String",
        )),
        Value::Object(_) => Err(ApiError::serialization(
            "Start of structure or map found where not expected",
        )),
        Value::Array(_) => Err(ApiError::serialization(
            "Start of list found where not expected",
        )),
        Value::Null => Err(ApiError::serialization("Unexpected null value")),
    }
}

fn number(v: &Value) -> Result<Number, ApiError> {
    parse_number(&string(v)?)
}

/// Parses a number given as a string in a request, with DynamoDB's messages.
pub fn parse_number(text: &str) -> Result<Number, ApiError> {
    Number::parse(text).map_err(|e| ApiError::validation(e.to_string()))
}

fn binary(v: &Value) -> Result<Vec<u8>, ApiError> {
    let text = string(v)?;
    BASE64.decode(text.as_bytes()).map_err(|_| {
        ApiError::serialization(
            "Base64 encoded length is expected a multiple of 4 bytes but found: ".to_string()
                + &text.len().to_string(),
        )
    })
}

fn array(v: &Value) -> Result<&Vec<Value>, ApiError> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Object(_) => Err(ApiError::serialization(
            "Start of structure or map found where not expected",
        )),
        _ => Err(ApiError::serialization(
            "Unexpected token received from parser",
        )),
    }
}

/// Encodes one attribute value.
pub fn value_to_json(value: &AttributeValue) -> Value {
    let (tag, v) = match value {
        AttributeValue::S(s) => ("S", Value::String(s.clone())),
        AttributeValue::N(n) => ("N", Value::String(n.to_string())),
        AttributeValue::B(b) => ("B", Value::String(BASE64.encode(b))),
        AttributeValue::Bool(b) => ("BOOL", Value::Bool(*b)),
        AttributeValue::Null => ("NULL", Value::Bool(true)),
        AttributeValue::M(m) => ("M", item_to_json(m)),
        AttributeValue::L(l) => ("L", Value::Array(l.iter().map(value_to_json).collect())),
        AttributeValue::Ss(ss) => (
            "SS",
            Value::Array(ss.iter().cloned().map(Value::String).collect()),
        ),
        AttributeValue::Ns(ns) => (
            "NS",
            Value::Array(ns.iter().map(|n| Value::String(n.to_string())).collect()),
        ),
        AttributeValue::Bs(bs) => (
            "BS",
            Value::Array(bs.iter().map(|b| Value::String(BASE64.encode(b))).collect()),
        ),
    };
    let mut obj = JsonMap::with_capacity(1);
    obj.insert(tag.to_string(), v);
    Value::Object(obj)
}

/// Encodes an item as a JSON object.
pub fn item_to_json(item: &Item) -> Value {
    let mut obj = JsonMap::with_capacity(item.len());
    for (k, v) in item {
        obj.insert(k.clone(), value_to_json(v));
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_and_documents_round_trip() {
        let json = json!({
            "s": {"S": "x"}, "b": {"B": "AAEC"}, "t": {"BOOL": true}, "n": {"NULL": true},
            "l": {"L": [{"S": "a"}, {"M": {"k": {"S": "v"}}}]},
            "ss": {"SS": ["a", "b"]}, "bs": {"BS": ["AA=="]},
        });
        let item = item_from_json(&json).unwrap();
        assert_eq!(item["b"], AttributeValue::B(vec![0, 1, 2]));
        assert_eq!(item_to_json(&item), json);
    }

    #[test]
    fn rejects_malformed_values_with_dynamodb_messages() {
        let cases = [
            (json!({}), "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"),
            (json!({"S": "a", "N": "1"}), "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"),
            (json!({"SS": []}), "One or more parameter values were invalid: An string set  may not be empty"),
            (json!({"BS": []}), "One or more parameter values were invalid: Binary sets should not be empty"),
            (json!({"SS": ["a", "a"]}), "One or more parameter values were invalid: Input collection [a, a] contains duplicates."),
            (json!({"NULL": false}), "One or more parameter values were invalid: Null attribute value types must have the value of true"),
        ];
        for (input, message) in cases {
            let err = value_from_json(&input).unwrap_err();
            assert_eq!(err.message, message, "for {input}");
        }
        let err = value_from_json(&json!({"S": 5})).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Serialization);
    }

    #[test]
    fn nesting_deeper_than_32_is_rejected() {
        let mut v = json!({"S": "leaf"});
        for _ in 0..31 {
            v = json!({"L": [v]});
        }
        assert!(value_from_json(&v).is_ok());
        let deeper = json!({"L": [v]});
        assert_eq!(
            value_from_json(&deeper).unwrap_err().message,
            "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit"
        );
    }
}

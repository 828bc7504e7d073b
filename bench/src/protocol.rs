//! The DynamoDB JSON 1.0 wire protocol as the benchmark speaks it: HTTP/1.1
//! request framing (with a fixed, syntactically valid but unverified SigV4
//! `Authorization` header) and the request bodies of every phase, built ahead
//! of time so the timed loops only write prepared bytes.

use std::fmt::{self, Write as _};

use bytes::Bytes;

/// Name of the table every target gets.
pub const TABLE: &str = "partita_bench";

/// Items per partition key in the Query data set (the spec's "10 items per query").
pub const ITEMS_PER_QUERY: usize = 10;

/// A fixed SigV4 header. Every peer (and `partita serve` before credentials are
/// configured) checks only that it is well formed, never the signature.
const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
    Credential=AKIDEXAMPLE/20260101/us-east-1/dynamodb/aws4_request, \
    SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
    Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
const AMZ_DATE: &str = "20260101T000000Z";
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The operations the benchmark times, plus the control calls of the setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    PutItem,
    GetItem,
    Query,
    CreateTable,
    DescribeTable,
    ListTables,
}

impl Op {
    /// The operation name as it appears after `DynamoDB_20120810.`.
    pub fn name(self) -> &'static str {
        match self {
            Op::PutItem => "PutItem",
            Op::GetItem => "GetItem",
            Op::Query => "Query",
            Op::CreateTable => "CreateTable",
            Op::DescribeTable => "DescribeTable",
            Op::ListTables => "ListTables",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Op::PutItem => "DynamoDB_20120810.PutItem",
            Op::GetItem => "DynamoDB_20120810.GetItem",
            Op::Query => "DynamoDB_20120810.Query",
            Op::CreateTable => "DynamoDB_20120810.CreateTable",
            Op::DescribeTable => "DynamoDB_20120810.DescribeTable",
            Op::ListTables => "DynamoDB_20120810.ListTables",
        }
    }
}

/// Frames DynamoDB requests for one endpoint as complete HTTP/1.1 messages
/// (request line, headers, body), so the timed loops write prepared bytes.
#[derive(Clone)]
pub struct Wire {
    authority: String,
}

impl Wire {
    /// Returns the framing for requests sent to `authority` (`host:port`).
    pub fn new(authority: &str) -> Self {
        Wire {
            authority: authority.to_string(),
        }
    }

    /// Appends a complete `POST /` request for `op` carrying `body` to `out`.
    pub fn write_request(&self, op: Op, body: &[u8], out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: {CONTENT_TYPE}\r\n\
             X-Amz-Target: {}\r\nX-Amz-Date: {AMZ_DATE}\r\nAuthorization: {AUTHORIZATION}\r\n\
             Content-Length: {}\r\n\r\n",
            self.authority,
            op.target(),
            body.len()
        );
        out.extend_from_slice(body);
    }

    /// Returns a complete request for `op` carrying `body`.
    pub fn request(&self, op: Op, body: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(body.len() + 512);
        self.write_request(op, body, &mut out);
        Bytes::from(out)
    }
}

/// A 100-byte attribute value so items look like small real records (~170 bytes).
const PAYLOAD: &str = "benchmark-payload-0123456789abcdefghijklmnopqrstuvwxyz\
    ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789-partitaa";

/// The CreateTable body: pk (S) hash key, sk (S) range key, on-demand billing.
pub fn create_table_body() -> Bytes {
    Bytes::from(format!(
        concat!(
            r#"{{"TableName":"{t}","#,
            r#""AttributeDefinitions":[{{"AttributeName":"pk","AttributeType":"S"}},"#,
            r#"{{"AttributeName":"sk","AttributeType":"S"}}],"#,
            r#""KeySchema":[{{"AttributeName":"pk","KeyType":"HASH"}},"#,
            r#"{{"AttributeName":"sk","KeyType":"RANGE"}}],"#,
            r#""BillingMode":"PAY_PER_REQUEST"}}"#
        ),
        t = TABLE
    ))
}

/// The DescribeTable body for the benchmark table.
pub fn describe_table_body() -> Bytes {
    Bytes::from(format!(r#"{{"TableName":"{TABLE}"}}"#))
}

/// Appends a PutItem body writing item (`pk`, `sk`) with the fixed payload.
pub fn write_put_body(out: &mut String, pk: &dyn fmt::Display, sk: &str, n: u64) {
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        concat!(
            r#"{{"TableName":"{t}","Item":{{"pk":{{"S":"{pk}"}},"sk":{{"S":"{sk}"}},"#,
            r#""payload":{{"S":"{p}"}},"n":{{"N":"{n}"}}}}}}"#
        ),
        t = TABLE,
        pk = pk,
        sk = sk,
        p = PAYLOAD,
        n = n
    );
}

/// A PutItem body writing item (`pk`, `sk`) with the fixed payload.
pub fn put_body(pk: &str, sk: &str, n: u64) -> Bytes {
    let mut s = String::with_capacity(256);
    write_put_body(&mut s, &pk, sk, n);
    Bytes::from(s)
}

/// A GetItem body for item (`pk`, `sk`).
pub fn get_body(pk: &str, sk: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"TableName":"{TABLE}","Key":{{"pk":{{"S":"{pk}"}},"sk":{{"S":"{sk}"}}}}}}"#
    ))
}

/// A Query body returning every item of partition key `pk`.
pub fn query_body(pk: &str) -> Bytes {
    Bytes::from(format!(
        concat!(
            r#"{{"TableName":"{t}","KeyConditionExpression":"pk = :p","#,
            r#""ExpressionAttributeValues":{{":p":{{"S":"{pk}"}}}}}}"#
        ),
        t = TABLE,
        pk = pk
    ))
}

/// Partition key of the `i`-th GetItem item (sort key `"0"`).
pub fn get_key(i: usize) -> String {
    format!("get#{i:06}")
}

/// Partition key of the `i`-th Query collection.
pub fn query_key(i: usize) -> String {
    format!("q#{i:05}")
}

/// Sort key of the `j`-th item of a Query collection.
pub fn query_sort_key(j: usize) -> String {
    format!("s#{j:02}")
}

/// Partition key of a PutItem issued during a timed phase: unique per
/// phase, connection and sequence number, so every put inserts.
pub struct PutKey<'a> {
    pub phase: &'a str,
    pub conn: usize,
    pub seq: u64,
}

impl fmt::Display for PutKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "put#{}#{:02}#{:09}", self.phase, self.conn, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_json_with_the_expected_shape() {
        let put: serde_json::Value = serde_json::from_slice(&put_body("a", "b", 7)).unwrap();
        let mut fresh = String::new();
        let key = PutKey {
            phase: "r1t",
            conn: 3,
            seq: 42,
        };
        write_put_body(&mut fresh, &key, "0", 42);
        let fresh: serde_json::Value = serde_json::from_str(&fresh).unwrap();
        assert_eq!(fresh["Item"]["pk"]["S"], "put#r1t#03#000000042");
        assert_eq!(put["Item"]["pk"]["S"], "a");
        assert_eq!(put["Item"]["n"]["N"], "7");
        assert_eq!(put["Item"]["payload"]["S"].as_str().unwrap().len(), 100);
        let get: serde_json::Value = serde_json::from_slice(&get_body("a", "b")).unwrap();
        assert_eq!(get["Key"]["sk"]["S"], "b");
        let q: serde_json::Value = serde_json::from_slice(&query_body("q#1")).unwrap();
        assert_eq!(q["ExpressionAttributeValues"][":p"]["S"], "q#1");
        let c: serde_json::Value = serde_json::from_slice(&create_table_body()).unwrap();
        assert_eq!(c["KeySchema"][1]["KeyType"], "RANGE");
        let d: serde_json::Value = serde_json::from_slice(&describe_table_body()).unwrap();
        assert_eq!(d["TableName"], TABLE);
    }

    #[test]
    fn requests_are_framed_with_content_length() {
        let req = Wire::new("127.0.0.1:9").request(Op::GetItem, b"{}");
        let text = std::str::from_utf8(&req).unwrap();
        assert!(text.starts_with("POST / HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"));
        assert!(text.contains("\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n"));
        assert!(text.contains("\r\nContent-Type: application/x-amz-json-1.0\r\n"));
        assert!(text.ends_with("\r\nContent-Length: 2\r\n\r\n{}"));
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Request::new(&mut headers);
        assert!(parsed.parse(&req).unwrap().is_complete());
        assert_eq!(parsed.headers.len(), 6);
    }

    #[test]
    fn authorization_is_a_complete_sigv4_header() {
        let sig = AUTHORIZATION.rsplit("Signature=").next().unwrap();
        assert_eq!(sig.len(), 64);
        assert!(sig.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(AUTHORIZATION.contains("Credential=AKIDEXAMPLE/20260101/us-east-1/dynamodb/"));
    }
}

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn parts<'a>(
    headers: &[(&'a str, &'a str)],
    method: &'a str,
    path: &'a str,
    query: &'a str,
) -> HttpParts<'a> {
    HttpParts {
        method,
        path,
        query,
        headers: headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect(),
    }
}

#[test]
fn signing_key_matches_the_aws_documentation_example() {
    // "Examples of how to derive a signing key" (IAM, 20120215).
    let key = signing_key(SECRET.as_bytes(), "20120215", "us-east-1", "iam");
    assert_eq!(
        hex(&key),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
}

#[test]
fn get_vanilla_from_the_sigv4_test_suite() {
    let p = parts(
        &[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ],
        "GET",
        "/",
        "",
    );
    let canonical = canonical_request(&p, "host;x-amz-date", b"", false);
    assert_eq!(
        String::from_utf8_lossy(&canonical),
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let sts = string_to_sign(
        "20150830T123600Z",
        "20150830/us-east-1/service/aws4_request",
        &canonical,
    );
    assert_eq!(
        sts,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
         bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
    let signer = Signer {
        access_key: "AKIDEXAMPLE",
        secret: SECRET,
        region: "us-east-1",
        service: "service",
        amz_date: "20150830T123600Z",
    };
    assert_eq!(
        signer.authorization(&p, b"", "host;x-amz-date"),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

#[test]
fn canonicalization_rules() {
    // Query pairs are decoded, re-encoded (space as %20, reserved chars
    // escaped, unreserved kept) and sorted by name then value.
    assert_eq!(canonical_query("b=2&a=3&a=1&c", false), "a=1&a=3&b=2&c=");
    assert_eq!(
        canonical_query("x=a%20b&y=a+b&z=~-._", false),
        "x=a%20b&y=a%2Bb&z=~-._"
    );
    assert_eq!(canonical_query("k=%zz", false), "k=%25zz");
    assert_eq!(
        canonical_query("X-Amz-Signature=abc&X-Amz-Date=1", true),
        "X-Amz-Date=1"
    );
    // Paths: dot segments removed, each segment encoded again.
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/"), "/");
    assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
    assert_eq!(canonical_uri("/a%20b/"), "/a%2520b/");
    assert_eq!(canonical_uri("/.."), "/");
    // Header values: trimmed, inner runs of spaces collapsed, repeated
    // headers joined with commas.
    let p = parts(
        &[
            ("host", "h"),
            ("my-header", "  a   b  c "),
            ("my-header", "d"),
        ],
        "POST",
        "/",
        "",
    );
    let c =
        String::from_utf8_lossy(&canonical_request(&p, "host;my-header", b"x", false)).to_string();
    assert!(c.contains("\nmy-header:a b c,d\n"), "{c}");
}

fn dynamo_parts<'a>(auth: &'a str, date: &'a str) -> HttpParts<'a> {
    parts(
        &[
            ("host", "localhost:8000"),
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-date", date),
            ("x-amz-target", "DynamoDB_20120810.GetItem"),
            ("authorization", auth),
        ],
        "POST",
        "/",
        "",
    )
}

const NOW: &str = "20260101T120000Z";
const SIGNED: &str = "content-type;host;x-amz-date;x-amz-target";

fn sign(body: &[u8], date: &str, secret: &str, region: &str) -> String {
    let p = dynamo_parts("", date);
    Signer {
        access_key: "AKIATEST",
        secret,
        region,
        service: "dynamodb",
        amz_date: date,
    }
    .authorization(&p, body, SIGNED)
}

fn verify(auth: &str, date: &str, body: &[u8], secret: &str) -> Result<(), SigError> {
    let p = dynamo_parts(auth, date);
    let req = parse_request(&p)?;
    check_scope(&req, "us-east-1", "dynamodb")?;
    check_time(&req, parse_amz_date(NOW).unwrap_or(0))?;
    verify_signature(&req, &p, body, secret.as_bytes())
}

#[test]
fn sign_then_verify_and_every_tamper_fails() {
    let body = br#"{"TableName":"T","Key":{"pk":{"S":"alice"}}}"#;
    let auth = sign(body, NOW, "s3cret", "us-east-1");
    assert_eq!(verify(&auth, NOW, body, "s3cret"), Ok(()));
    let mismatch = Err(SigError::Invalid(MISMATCH.to_string()));
    // Wrong secret, tampered body, tampered signed header.
    assert_eq!(verify(&auth, NOW, body, "s3cret2"), mismatch);
    assert_eq!(
        verify(
            &auth,
            NOW,
            br#"{"TableName":"T","Key":{"pk":{"S":"bob"}}}"#,
            "s3cret"
        ),
        mismatch
    );
    let p = dynamo_parts(&auth, NOW);
    let mut tampered = p.clone();
    tampered.headers[3] = ("x-amz-target", b"DynamoDB_20120810.DeleteItem");
    let req = parse_request(&tampered).expect("parses");
    assert_eq!(verify_signature(&req, &tampered, body, b"s3cret"), mismatch);
    // A different signature of the same length.
    let sig_at = auth.find("Signature=").map(|i| i + 10).unwrap_or(0);
    let mut bytes = auth.clone().into_bytes();
    bytes[sig_at] = if bytes[sig_at] == b'a' { b'b' } else { b'a' };
    let other = String::from_utf8(bytes).expect("ascii");
    assert_eq!(verify(&other, NOW, body, "s3cret"), mismatch);
}

#[test]
fn scope_and_time_errors_use_aws_wording() {
    let body = b"{}";
    let auth = sign(body, NOW, "s", "eu-west-1");
    assert_eq!(
        verify(&auth, NOW, body, "s"),
        Err(SigError::Invalid(
            "Credential should be scoped to a valid region, not 'eu-west-1'. ".to_string()
        ))
    );
    let old = "20260101T114400Z";
    let auth = sign(body, old, "s", "us-east-1");
    assert_eq!(
        verify(&auth, old, body, "s"),
        Err(SigError::Invalid(
            "Signature expired: 20260101T114400Z is now earlier than 20260101T114500Z (20260101T120000Z - 15 min.)".to_string()
        ))
    );
    let future = "20260101T121600Z";
    let auth = sign(body, future, "s", "us-east-1");
    assert!(
        matches!(verify(&auth, future, body, "s"), Err(SigError::Invalid(m)) if m.starts_with("Signature not yet current: 20260101T121600Z is still later than 20260101T121500Z"))
    );
    // Within the window either way.
    for ok in ["20260101T114600Z", "20260101T121400Z"] {
        let auth = sign(body, ok, "s", "us-east-1");
        assert_eq!(verify(&auth, ok, body, "s"), Ok(()), "{ok}");
    }
    // The credential date must be the request's day.
    let auth = sign(body, NOW, "s", "us-east-1").replace("/20260101/", "/20251231/");
    assert!(
        matches!(verify(&auth, NOW, body, "s"), Err(SigError::Invalid(m)) if m.starts_with("Date in Credential scope does not match"))
    );
    let auth = sign(body, NOW, "s", "us-east-1").replace("/dynamodb/", "/s3/");
    assert_eq!(
        verify(&auth, NOW, body, "s"),
        Err(SigError::Invalid(
            "Credential should be scoped to correct service: 'dynamodb'. ".to_string()
        ))
    );
}

#[test]
fn malformed_authorization_headers() {
    let cases: &[(&str, &str)] = &[
        ("", "Authorization header requires 'Credential' parameter."),
        ("Basic dXNlcjpwYXNz", "Authorization header requires 'Credential' parameter."),
        ("AWS4-HMAC-SHA512 Credential=a/b/c/d/e", "Unsupported AWS 'algorithm'"),
        ("AWS4-HMAC-SHA256", "Authorization header requires 'Credential' parameter."),
        ("AWS4-HMAC-SHA256 Credential=A/20260101/us-east-1/dynamodb/aws4_request", "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter."),
        ("AWS4-HMAC-SHA256 Credential=A/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature", "Invalid key=value pair (missing equal-sign) in Authorization header"),
        ("AWS4-HMAC-SHA256 Credential=A/20260101, SignedHeaders=host, Signature=00", "Credential must have exactly 5 slash-delimited elements"),
    ];
    for (header, want) in cases {
        match parse_authorization(header) {
            Err(SigError::Incomplete(m)) => assert!(m.starts_with(want), "{header:?}: {m}"),
            other => panic!("{header:?}: {other:?}"),
        }
    }
    let ok = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request,SignedHeaders=host;x-amz-date,   Signature=abc",
    )
    .expect("valid");
    assert_eq!(ok.credential.access_key, "AKID");
    assert_eq!(ok.signed_headers, "host;x-amz-date");
    assert_eq!(ok.signature, "abc");
    // No X-Amz-Date nor Date.
    let p = parts(&[("host", "h"), ("authorization", "AWS4-HMAC-SHA256 Credential=A/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00")], "POST", "/", "");
    assert!(
        matches!(parse_request(&p), Err(SigError::Incomplete(m)) if m.starts_with("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."))
    );
    // Nothing at all.
    let p = parts(&[("host", "h")], "POST", "/", "");
    assert!(matches!(parse_request(&p), Err(SigError::Missing)));
    // Host must be signed.
    let p = dynamo_parts("AWS4-HMAC-SHA256 Credential=A/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=x-amz-date, Signature=00", NOW);
    let req = parse_request(&p).expect("parses");
    assert!(
        matches!(verify_signature(&req, &p, b"", b"s"), Err(SigError::Invalid(m)) if m.contains("'Host'"))
    );
}

#[test]
fn date_header_is_accepted_instead_of_x_amz_date() {
    let p = parts(
        &[("host", "h"), ("date", "Thu, 01 Jan 2026 12:00:00 GMT")],
        "POST",
        "/",
        "",
    );
    let auth = Signer {
        access_key: "A",
        secret: "s",
        region: "us-east-1",
        service: "dynamodb",
        amz_date: NOW,
    }
    .authorization(&p, b"", "date;host");
    let mut with_auth = p.clone();
    with_auth.headers.push(("authorization", auth.as_bytes()));
    let req = parse_request(&with_auth).expect("parses");
    assert_eq!(req.amz_date, NOW);
    assert_eq!(verify_signature(&req, &with_auth, b"", b"s"), Ok(()));
}

#[test]
fn presigned_requests() {
    let base = parts(
        &[
            ("host", "localhost:8000"),
            ("x-amz-target", "DynamoDB_20120810.ListTables"),
        ],
        "POST",
        "/",
        "",
    );
    let signer = Signer {
        access_key: "AKIATEST",
        secret: "s",
        region: "us-east-1",
        service: "dynamodb",
        amz_date: NOW,
    };
    let query = signer.presign(&base, b"{}", "host;x-amz-target", 300);
    let p = HttpParts {
        query: &query,
        ..base.clone()
    };
    let req = parse_request(&p).expect("parses");
    assert!(req.presigned);
    assert_eq!(req.expires, Some(300));
    assert_eq!(req.credential.access_key, "AKIATEST");
    check_scope(&req, "us-east-1", "dynamodb").expect("scope");
    let now = parse_amz_date(NOW).unwrap_or(0);
    check_time(&req, now + 299).expect("fresh");
    assert_eq!(verify_signature(&req, &p, b"{}", b"s"), Ok(()));
    assert!(verify_signature(&req, &p, b"{\"x\":1}", b"s").is_err());
    assert_eq!(
        check_time(&req, now + 301),
        Err(SigError::Invalid(
            "Signature expired: 20260101T120000Z is now earlier than 20260101T120001Z (20260101T120501Z - 300 sec.)".to_string()
        ))
    );
    // Missing parameters.
    let p = HttpParts {
        query: "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T120000Z",
        ..base.clone()
    };
    assert!(
        matches!(parse_request(&p), Err(SigError::Incomplete(m)) if m.starts_with("AWS query-string parameters must include 'X-Amz-Credential'."))
    );
    let bad_expiry = query.replace("X-Amz-Expires=300", "X-Amz-Expires=999999");
    let p = HttpParts {
        query: &bad_expiry,
        ..base.clone()
    };
    assert!(matches!(parse_request(&p), Err(SigError::Incomplete(_))));
}

#[test]
fn dates_round_trip() {
    for t in [
        0i64,
        951_782_400,
        1_767_268_800,
        4_102_444_799,
        1_709_208_000,
    ] {
        let s = format_amz_date(t);
        assert_eq!(parse_amz_date(&s), Some(t), "{s}");
    }
    assert_eq!(format_amz_date(1_767_268_800), "20260101T120000Z");
    assert_eq!(parse_amz_date("20260101T120000"), None);
    assert_eq!(parse_amz_date("2026010XT120000Z"), None);
    assert_eq!(parse_amz_date("20261301T120000Z"), None);
    assert_eq!(parse_amz_date("２０２６0101T120000Z"), None);
    assert_eq!(
        parse_http_date("Thu, 01 Jan 2026 12:00:00 GMT"),
        Some(1_767_268_800)
    );
}

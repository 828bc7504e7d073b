use serde_json::json;

use super::*;

const T: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/Tenants";

fn policy(v: Value) -> Policy {
    Policy::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn keys(user: &str, leading: Option<&[&str]>) -> ContextKeys {
    let mut k = ContextKeys::new();
    k.set("aws:username", user);
    k.set("aws:userid", format!("ID-{user}"));
    if let Some(l) = leading {
        k.set_many("dynamodb:LeadingKeys", l.iter().map(|s| s.to_string()));
    }
    k
}

fn decide(p: &Policy, action: &str, resource: &str, k: &ContextKeys) -> Decision {
    evaluate(
        [p],
        &RequestContext {
            action,
            resource,
            keys: k,
        },
    )
}

fn tenant() -> Policy {
    policy(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan"],
            "Resource": "arn:aws:dynamodb:*:*:table/Tenants",
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:username}"]}}
        }]
    }))
}

#[test]
fn tenant_policy_table() {
    use Decision::*;
    let p = tenant();
    let cases: &[(&str, &str, Option<&[&str]>, Decision)] = &[
        ("dynamodb:GetItem", T, Some(&["alice"]), Allow),
        ("dynamodb:GetItem", T, Some(&["bob"]), ImplicitDeny),
        ("dynamodb:PutItem", T, Some(&["alice", "bob"]), ImplicitDeny),
        ("dynamodb:DeleteItem", T, Some(&["alice"]), ImplicitDeny),
        (
            "dynamodb:GetItem",
            "arn:aws:dynamodb:us-east-1:123456789012:table/Other",
            Some(&["alice"]),
            ImplicitDeny,
        ),
        (
            "dynamodb:GetItem",
            "arn:aws:dynamodb:us-east-1:123456789012:table/Tenants/index/I",
            Some(&["alice"]),
            ImplicitDeny,
        ),
        ("dynamodb:getitem", T, Some(&["alice"]), Allow),
    ];
    for (action, resource, leading, want) in cases {
        assert_eq!(
            decide(&p, action, resource, &keys("alice", *leading)),
            *want,
            "{action} {resource} {leading:?}"
        );
    }
    // Scan: LeadingKeys unknown → the Allow cannot apply.
    let mut k = keys("alice", None);
    k.set_unknown("dynamodb:LeadingKeys");
    assert_eq!(decide(&p, "dynamodb:Scan", T, &k), ImplicitDeny);
    // Absent (not unknown) is vacuously true for ForAllValues.
    assert_eq!(decide(&p, "dynamodb:Scan", T, &keys("alice", None)), Allow);
}

#[test]
fn explicit_deny_wins_and_default_is_deny() {
    let admin = policy(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}}),
    );
    let deny = policy(
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "dynamodb:Delete*", "Resource": T}]}),
    );
    let k = keys("alice", Some(&["x"]));
    let ctx = |action: &'static str| RequestContext {
        action,
        resource: T,
        keys: &k,
    };
    assert_eq!(
        evaluate([&admin, &deny], &ctx("dynamodb:DeleteItem")),
        Decision::ExplicitDeny
    );
    assert_eq!(
        evaluate([&deny, &admin], &ctx("dynamodb:DeleteTable")),
        Decision::ExplicitDeny
    );
    assert_eq!(
        evaluate([&admin, &deny], &ctx("dynamodb:GetItem")),
        Decision::Allow
    );
    assert_eq!(
        evaluate([&deny], &ctx("dynamodb:GetItem")),
        Decision::ImplicitDeny
    );
    assert_eq!(
        evaluate(std::iter::empty(), &ctx("dynamodb:GetItem")),
        Decision::ImplicitDeny
    );
    // A Deny conditioned on an unknown key applies (fail closed).
    let deny_admin_rows = policy(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": "admin"}}}
    ]}));
    let mut scan = keys("alice", None);
    scan.set_unknown("dynamodb:LeadingKeys");
    assert_eq!(
        decide(&deny_admin_rows, "dynamodb:Scan", T, &scan),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(
            &deny_admin_rows,
            "dynamodb:GetItem",
            T,
            &keys("a", Some(&["x"]))
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(
            &deny_admin_rows,
            "dynamodb:GetItem",
            T,
            &keys("a", Some(&["admin"]))
        ),
        Decision::ExplicitDeny
    );
}

#[test]
fn not_action_not_resource_and_wildcards() {
    let p = policy(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "NotAction": ["dynamodb:Delete*", "dynamodb:*Table"], "NotResource": "arn:aws:dynamodb:*:*:table/Secret*"}
    ]}));
    let k = keys("a", None);
    assert_eq!(decide(&p, "dynamodb:GetItem", T, &k), Decision::Allow);
    assert_eq!(
        decide(&p, "dynamodb:DeleteItem", T, &k),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(&p, "dynamodb:CreateTable", T, &k),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(
            &p,
            "dynamodb:GetItem",
            "arn:aws:dynamodb:us-east-1:1:table/Secrets",
            &k
        ),
        Decision::ImplicitDeny
    );
    let q = policy(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "dynamodb:???Item", "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/T?nants*"}}),
    );
    assert_eq!(decide(&q, "dynamodb:GetItem", T, &k), Decision::Allow);
    assert_eq!(
        decide(&q, "dynamodb:PutItem", &format!("{T}/index/x"), &k),
        Decision::Allow
    );
    assert_eq!(
        decide(&q, "dynamodb:DeleteItem", T, &k),
        Decision::ImplicitDeny
    );
    // Resource matching is case-sensitive.
    assert_eq!(
        decide(&q, "dynamodb:GetItem", &T.to_lowercase(), &k),
        Decision::ImplicitDeny
    );
}

#[test]
fn policy_variables() {
    let p = policy(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:aws:dynamodb:*:*:table/${aws:username}-*"},
        {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*", "Condition": {"StringEquals": {"dynamodb:LeadingKeys": "${aws:userid}"}}},
        {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": "*", "Condition": {"StringLike": {"dynamodb:LeadingKeys": "${aws:username}#*"}}},
        {"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": "arn:aws:dynamodb:*:*:table/${*}${?}${$}"}
    ]}));
    let k = keys("alice", Some(&["ID-alice"]));
    assert_eq!(
        decide(
            &p,
            "dynamodb:GetItem",
            "arn:aws:dynamodb:r:1:table/alice-data",
            &k
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(
            &p,
            "dynamodb:GetItem",
            "arn:aws:dynamodb:r:1:table/bob-data",
            &k
        ),
        Decision::ImplicitDeny
    );
    assert_eq!(decide(&p, "dynamodb:PutItem", T, &k), Decision::Allow);
    assert_eq!(
        decide(&p, "dynamodb:PutItem", T, &keys("alice", Some(&["alice"]))),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(
            &p,
            "dynamodb:Query",
            T,
            &keys("alice", Some(&["alice#2024"]))
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(&p, "dynamodb:Query", T, &keys("alice", Some(&["bob#2024"]))),
        Decision::ImplicitDeny
    );
    // Escapes are literal characters, not wildcards.
    assert_eq!(
        decide(&p, "dynamodb:Scan", "arn:aws:dynamodb:r:1:table/*?$", &k),
        Decision::Allow
    );
    assert_eq!(
        decide(&p, "dynamodb:Scan", "arn:aws:dynamodb:r:1:table/ab$", &k),
        Decision::ImplicitDeny
    );
    // A username with wildcard characters matches only literally.
    let star = keys("*", None);
    assert_eq!(
        decide(
            &p,
            "dynamodb:GetItem",
            "arn:aws:dynamodb:r:1:table/bob-data",
            &star
        ),
        Decision::ImplicitDeny
    );
    // 2008-10-17: variables are plain text.
    let old = policy(
        json!({"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:dynamodb:*:*:table/${aws:username}"}}),
    );
    assert_eq!(
        decide(
            &old,
            "dynamodb:GetItem",
            "arn:aws:dynamodb:r:1:table/alice",
            &k
        ),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(
            &old,
            "dynamodb:GetItem",
            "arn:aws:dynamodb:r:1:table/${aws:username}",
            &k
        ),
        Decision::Allow
    );
    // Defaults and unresolvable variables.
    let d = policy(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:aws:dynamodb:*:*:table/${aws:nope, 'fallback'}"},
        {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "arn:aws:dynamodb:*:*:table/${aws:nope}"}
    ]}));
    assert_eq!(
        decide(
            &d,
            "dynamodb:GetItem",
            "arn:aws:dynamodb:r:1:table/fallback",
            &k
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(&d, "dynamodb:PutItem", "arn:aws:dynamodb:r:1:table/", &k),
        Decision::ImplicitDeny
    );
}

fn cond(condition: Value, k: &ContextKeys) -> Decision {
    let p = policy(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition}}),
    );
    decide(&p, "dynamodb:GetItem", T, k)
}

#[test]
fn condition_operator_table() {
    use Decision::*;
    let mut k = keys("alice", None);
    k.set_many(
        "dynamodb:Attributes",
        ["pk".to_string(), "name".to_string()],
    );
    k.set("dynamodb:Select", "SPECIFIC_ATTRIBUTES");
    k.set("aws:SecureTransport", "true");
    k.set("n", "10");
    let table: Vec<(Value, Decision)> = vec![
        (
            json!({"ForAllValues:StringEquals": {"dynamodb:Attributes": ["pk", "name", "age"]}}),
            Allow,
        ),
        (
            json!({"ForAllValues:StringEquals": {"dynamodb:Attributes": ["pk"]}}),
            ImplicitDeny,
        ),
        (
            json!({"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["name"]}}),
            Allow,
        ),
        (
            json!({"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["zzz"]}}),
            ImplicitDeny,
        ),
        (
            json!({"ForAllValues:StringNotEquals": {"dynamodb:Attributes": ["secret"]}}),
            Allow,
        ),
        (
            json!({"ForAllValues:StringNotEquals": {"dynamodb:Attributes": ["name"]}}),
            ImplicitDeny,
        ),
        (
            json!({"ForAnyValue:StringNotEquals": {"dynamodb:Attributes": ["name"]}}),
            Allow,
        ),
        (
            json!({"StringEquals": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}}),
            Allow,
        ),
        (
            json!({"StringEquals": {"dynamodb:Select": ["ALL_ATTRIBUTES", "COUNT"]}}),
            ImplicitDeny,
        ),
        (
            json!({"StringNotEquals": {"dynamodb:Select": "ALL_ATTRIBUTES"}}),
            Allow,
        ),
        (
            json!({"StringEqualsIgnoreCase": {"dynamodb:Select": "specific_attributes"}}),
            Allow,
        ),
        (
            json!({"StringNotEqualsIgnoreCase": {"dynamodb:Select": "specific_attributes"}}),
            ImplicitDeny,
        ),
        (
            json!({"StringLike": {"dynamodb:Select": "SPECIFIC_*"}}),
            Allow,
        ),
        (
            json!({"StringNotLike": {"dynamodb:Select": "SPECIFIC_*"}}),
            ImplicitDeny,
        ),
        // Absent keys.
        (
            json!({"StringEquals": {"dynamodb:ReturnValues": "NONE"}}),
            ImplicitDeny,
        ),
        (
            json!({"StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"}}),
            Allow,
        ),
        (
            json!({"StringNotEquals": {"dynamodb:ReturnValues": "ALL_OLD"}}),
            Allow,
        ),
        (
            json!({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": "x"}}),
            Allow,
        ),
        (
            json!({"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": "x"}}),
            ImplicitDeny,
        ),
        (json!({"Null": {"dynamodb:ReturnValues": "true"}}), Allow),
        (json!({"Null": {"dynamodb:ReturnValues": true}}), Allow),
        (json!({"Null": {"dynamodb:Select": "true"}}), ImplicitDeny),
        (json!({"Null": {"dynamodb:Select": "false"}}), Allow),
        // Bool and numbers.
        (json!({"Bool": {"aws:SecureTransport": "true"}}), Allow),
        (
            json!({"Bool": {"aws:SecureTransport": false}}),
            ImplicitDeny,
        ),
        (json!({"NumericLessThan": {"n": 11}}), Allow),
        (json!({"NumericGreaterThan": {"n": "10"}}), ImplicitDeny),
        (json!({"NumericGreaterThanEquals": {"n": "10"}}), Allow),
        (json!({"NumericNotEquals": {"n": ["1", "2"]}}), Allow),
        // Several keys and operators are ANDed; condition keys are case-insensitive.
        (
            json!({"StringEquals": {"dynamodb:select": "SPECIFIC_ATTRIBUTES", "aws:username": "alice"}}),
            Allow,
        ),
        (
            json!({"StringEquals": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}, "Bool": {"aws:SecureTransport": "false"}}),
            ImplicitDeny,
        ),
    ];
    for (c, want) in table {
        assert_eq!(cond(c.clone(), &k), want, "{c}");
    }
}

#[test]
fn parse_errors_name_the_element() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "(document)"),
        (json!({"Statement": []}), ""),
        (json!({"Version": "2020-01-01", "Statement": []}), "Version"),
        (json!({"Version": "2012-10-17"}), "Statement"),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}),
            "Statement[0].Resource",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]}),
            "Statement[0].Action",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Permit", "Action": "*", "Resource": "*"}]}),
            "Statement[0].Effect",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "GetItem", "Resource": "*"}]}),
            "Statement[0].Action",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}]}),
            "Statement[0].Principal",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEqualz": {"a": "b"}}}]}),
            "Statement[0].Condition.StringEqualz",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Null": {"a": "maybe"}}}]}),
            "Statement[0].Condition.Null.a",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:${aws:username"}]}),
            "Statement[0].Resource",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Extra": 1}]}),
            "Statement[0].Extra",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}),
            "Statement[0].Action",
        ),
    ];
    for (doc, path) in cases {
        match Policy::parse(&doc) {
            Err(e) => assert!(e.path.starts_with(path), "{doc}: {e}"),
            Ok(_) if path.is_empty() => {}
            Ok(p) => panic!("{doc} parsed: {p:?}"),
        }
    }
}

#[test]
fn glob_matching() {
    let g = |p: &str, t: &str| {
        let pat = Pattern::literal_glob(p);
        let k = ContextKeys::new();
        pat.matches(
            t,
            false,
            &Vars {
                enabled: true,
                keys: &k,
            },
        ) == Some(true)
    };
    assert!(g("*", ""));
    assert!(g("*", "abc"));
    assert!(g("a*c", "abbbc"));
    assert!(g("a*c", "ac"));
    assert!(!g("a*c", "ab"));
    assert!(g("a?c", "abc"));
    assert!(!g("a?c", "ac"));
    assert!(g("*a*b*", "xxaxxbxx"));
    assert!(!g("*a*b*", "xxbxxaxx"));
    assert!(g("é*", "éte"));
    assert!(!g("", "a"));
    assert!(g("", ""));
}

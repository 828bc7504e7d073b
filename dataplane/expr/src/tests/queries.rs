//! KeyConditionExpression parsing.

use super::*;

fn r() -> Req {
    Req::new()
        .name("#pk", "pk")
        .name("#sk", "sk")
        .value(":pk", s("p"))
        .value(":sk", s("s"))
        .value(":lo", s("a"))
        .value(":hi", s("z"))
        .value(":v", s("val"))
}

#[test]
fn accepted_forms() {
    let r = r();
    assert_eq!(
        ok(r.key("pk = :pk", "pk", Some("sk"))),
        KeyCondition {
            hash_value: s("p"),
            sort: None
        }
    );
    let both = KeyCondition {
        hash_value: s("p"),
        sort: Some(SortKeyCondition::Eq(s("s"))),
    };
    assert_eq!(ok(r.key("#pk = :pk AND #sk = :sk", "pk", Some("sk"))), both);
    assert_eq!(
        ok(r.key("(#pk = :pk) AND (#sk = :sk)", "pk", Some("sk"))),
        both
    );
    assert_eq!(
        ok(r.key("(#pk = :pk AND #sk = :sk)", "pk", Some("sk"))),
        both
    );
    assert_eq!(
        ok(r.key("(#pk = :pk AND (#sk = :sk))", "pk", Some("sk"))),
        both
    );
    assert_eq!(ok(r.key("sk = :sk and pk = :pk", "pk", Some("sk"))), both);
    let sort = |expr: &str| ok(r.key(expr, "pk", Some("sk"))).sort;
    assert_eq!(
        sort("pk = :pk AND sk < :sk"),
        Some(SortKeyCondition::Lt(s("s")))
    );
    assert_eq!(
        sort("pk = :pk AND sk <= :sk"),
        Some(SortKeyCondition::Le(s("s")))
    );
    assert_eq!(
        sort("pk = :pk AND sk > :sk"),
        Some(SortKeyCondition::Gt(s("s")))
    );
    assert_eq!(
        sort("pk = :pk AND sk >= :sk"),
        Some(SortKeyCondition::Ge(s("s")))
    );
    assert_eq!(
        sort("pk = :pk AND :sk > sk"),
        Some(SortKeyCondition::Lt(s("s")))
    );
    assert_eq!(
        sort("pk = :pk AND sk BETWEEN :lo AND :hi"),
        Some(SortKeyCondition::Between(s("a"), s("z")))
    );
    assert_eq!(
        sort("pk = :pk AND begins_with(sk, :sk)"),
        Some(SortKeyCondition::BeginsWith(s("s")))
    );
}

#[test]
fn schema_errors() {
    let r = r();
    assert_eq!(
        err(r.key("sk = :v", "pk", Some("sk"))),
        "Query condition missed key schema element: pk"
    );
    assert_eq!(
        err(r.key("attr1 = :v", "pk", Some("sk"))),
        "Query condition missed key schema element: pk"
    );
    assert_eq!(
        err(r.key("pk = :pk AND attr1 = :v", "pk", Some("sk"))),
        "Query condition missed key schema element: sk"
    );
    assert_eq!(
        err(r.key("pk = :pk AND attr1 = :v", "pk", None)),
        "Query key condition not supported"
    );
    assert_eq!(
        err(r.key("pk > :pk", "pk", Some("sk"))),
        "Query key condition not supported"
    );
    assert_eq!(
        err(r.key("begins_with(pk, :pk)", "pk", Some("sk"))),
        "Query key condition not supported"
    );
    assert_eq!(
        err(r.key("pk = :pk AND pk = :v", "pk", Some("sk"))),
        "Invalid KeyConditionExpression: KeyConditionExpressions must only contain one condition per key"
    );
}

#[test]
fn operator_errors() {
    let r = r();
    assert_eq!(
        err(r.key("pk = :pk OR sk = :sk", "pk", Some("sk"))),
        "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: OR"
    );
    assert_eq!(
        err(r.key("pk = :pk AND NOT sk = :sk", "pk", Some("sk"))),
        "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: NOT"
    );
    assert_eq!(
        err(r.key("pk = :pk AND sk IN (:lo, :hi)", "pk", Some("sk"))),
        "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: IN"
    );
    assert_eq!(
        err(r.key("pk = :pk AND sk <> :sk", "pk", Some("sk"))),
        "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: <>"
    );
    assert_eq!(
        err(r.key("pk = :pk AND attribute_exists(sk)", "pk", Some("sk"))),
        "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: attribute_exists"
    );
    assert_eq!(
        err(r.key("((pk = :pk))", "pk", None)),
        "Invalid KeyConditionExpression: The expression has redundant parentheses;"
    );
    assert_eq!(
        err(r.key("pk = :pk AND", "pk", None)),
        "Invalid KeyConditionExpression: Syntax error; token: \"<EOF>\", near: \"AND\""
    );
}

#[test]
fn sort_key_conditions_match_values() {
    let k = s("m");
    assert!(SortKeyCondition::Eq(s("m")).matches(&k));
    assert!(SortKeyCondition::Lt(s("n")).matches(&k));
    assert!(!SortKeyCondition::Lt(s("m")).matches(&k));
    assert!(SortKeyCondition::Le(s("m")).matches(&k));
    assert!(SortKeyCondition::Gt(s("l")).matches(&k));
    assert!(SortKeyCondition::Ge(s("m")).matches(&k));
    assert!(SortKeyCondition::Between(s("a"), s("m")).matches(&k));
    assert!(!SortKeyCondition::Between(s("n"), s("z")).matches(&k));
    assert!(SortKeyCondition::BeginsWith(s("")).matches(&k));
    assert!(
        !SortKeyCondition::Eq(ni(1)).matches(&k),
        "other types never match"
    );
    assert!(SortKeyCondition::Between(n("-1.5"), n("2")).matches(&ni(2)));
    assert!(SortKeyCondition::BeginsWith(AttributeValue::B(vec![1]))
        .matches(&AttributeValue::B(vec![1, 2])));
}

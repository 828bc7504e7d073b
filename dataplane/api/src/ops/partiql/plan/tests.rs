use partita_model::{
    AttributeDefinition, BillingMode, IndexDefinition, KeyAttribute, KeySchema, Number, Projection,
    ScalarType, TableDefinition,
};

use super::*;
use crate::ops::partiql::parser::parse;

fn def(range: bool) -> TableDefinition {
    let key = |name: &str, t| KeyAttribute {
        name: name.into(),
        scalar_type: t,
    };
    TableDefinition {
        revision: 0,
        name: "T".into(),
        table_id: "id".into(),
        key_schema: KeySchema {
            hash: key("pk", ScalarType::S),
            range: range.then(|| key("sk", ScalarType::N)),
        },
        attribute_definitions: vec![AttributeDefinition {
            name: "pk".into(),
            scalar_type: ScalarType::S,
        }],
        billing_mode: BillingMode::PayPerRequest,
        throughput: None,
        created_at_ms: 0,
        pay_per_request_since_ms: None,
        stream: None,
        stream_label: None,
        ttl: None,
        tags: vec![],
        table_class: None,
        deletion_protection: false,
        local_indexes: vec![],
        global_indexes: vec![],
        partitions: 1,
        on_demand: None,
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(v).unwrap())
}

fn planned(text: &str, range: bool, params: &[AttributeValue]) -> Result<Plan, ApiError> {
    let (stmt, _) = parse(text)?;
    plan(&stmt, &def(range), params, false)
}

fn read(text: &str, range: bool) -> ReadPlan {
    match planned(text, range, &[]) {
        Ok(Plan::Read(r)) => r,
        other => panic!("{text}: {other:?}"),
    }
}

fn err(text: &str, range: bool) -> String {
    match planned(text, range, &[]) {
        Err(e) => e.message,
        Ok(p) => panic!("{text}: planned {p:?}"),
    }
}

#[test]
fn select_chooses_get_query_or_scan() {
    let r = read("SELECT * FROM T WHERE pk = 'a' AND sk = 2 AND x > 1", true);
    assert_eq!(
        r.access,
        Access::Get(Item::from([("pk".into(), s("a")), ("sk".into(), n("2"))]))
    );
    let r = read("SELECT * FROM T WHERE 'a' = pk", false);
    assert_eq!(r.access, Access::Get(Item::from([("pk".into(), s("a"))])));
    let r = read(
        "SELECT * FROM T WHERE pk = 'a' AND sk BETWEEN 1 AND 3",
        true,
    );
    assert_eq!(
        r.access,
        Access::Query {
            hash: s("a"),
            sort: Some(SortKeyCondition::Between(n("1"), n("3"))),
            forward: true,
        }
    );
    let r = read(
        "SELECT * FROM T WHERE pk = 'a' AND 2 < sk ORDER BY sk DESC",
        true,
    );
    assert_eq!(
        r.access,
        Access::Query {
            hash: s("a"),
            sort: Some(SortKeyCondition::Gt(n("2"))),
            forward: false,
        }
    );
    assert_eq!(
        read("SELECT * FROM T WHERE pk = 'a' OR pk = 'b'", true).access,
        Access::Scan
    );
    assert_eq!(read("SELECT * FROM T", true).access, Access::Scan);
    assert!(read("SELECT * FROM T", true).filter.is_none());
}

#[test]
fn where_clause_is_the_filter() {
    let r = read(
        "SELECT * FROM T WHERE pk = 'a' AND (x IS MISSING OR begins_with(y, 'p')) AND z IN [1, 2] AND NOT w <> 3",
        true,
    );
    let f = r.filter.clone().unwrap();
    let mut item = Item::from([
        ("pk".into(), s("a")),
        ("y".into(), s("pq")),
        ("z".into(), n("2")),
        ("w".into(), n("3")),
    ]);
    assert!(f.evaluate(Some(&item)).unwrap());
    item.insert("x".into(), n("1"));
    item.insert("y".into(), s("q"));
    assert!(!f.evaluate(Some(&item)).unwrap());
    let r = read(
        "SELECT * FROM T WHERE a.b[1] = 'x' AND attribute_type(c, 'N') AND size(d) > 1",
        false,
    );
    assert!(matches!(r.filter, Some(Condition::And(..))));
}

#[test]
fn projection_names_nested_paths_by_their_last_component() {
    let r = read("SELECT pk, m.nested, l[0], m.x[1] FROM T", false);
    let names: Vec<&str> = r
        .projection
        .as_ref()
        .unwrap()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, vec!["pk", "nested", "l[0]", "x[1]"]);
    let mut inner = partita_model::Map::new();
    inner.insert("nested".into(), s("deep"));
    let item = Item::from([
        ("pk".into(), s("a")),
        ("m".into(), AttributeValue::M(inner)),
        ("o".into(), s("x")),
    ]);
    let out = r.project(item);
    assert_eq!(out.get("nested"), Some(&s("deep")));
    assert_eq!(out.get("pk"), Some(&s("a")));
    assert!(!out.contains_key("o"));
    assert!(err("SELECT a.b, c.b FROM T", false).starts_with("Duplicate identifiers"));
}

#[test]
fn key_type_and_clause_errors() {
    let mismatch = "Key attribute's data type should match its data type in table's schema: Key";
    assert_eq!(
        err("SELECT * FROM T WHERE pk = 1", true),
        format!("{mismatch} pk")
    );
    assert_eq!(
        err("SELECT * FROM T WHERE pk = 'a' AND sk = '2'", true),
        format!("{mismatch} sk")
    );
    assert_eq!(
        err(
            "SELECT * FROM T WHERE pk = 'a' AND begins_with(sk, '1')",
            true
        ),
        format!("{mismatch} sk")
    );
    assert_eq!(
        err("SELECT * FROM T ORDER BY sk", true),
        "Must have WHERE clause in the statement when using ORDER BY clause."
    );
    assert_eq!(
        err("SELECT * FROM T WHERE pk = 'a' ORDER BY x", true),
        "Variable reference x in ORDER BY clause must be part of the primary key"
    );
    assert_eq!(err("SELECT * FROM T WHERE x = 1 ORDER BY sk", true), "Must have at least one non-optional hash key condition in WHERE clause when using ORDER BY clause.");
    assert_eq!(
        err("SELECT * FROM T WHERE nope(x)", true),
        "Unrecognized function: nope"
    );
    assert_eq!(
        err("SELECT * FROM T WHERE x = MISSING", true),
        "MISSING must be compared using IS operator"
    );
    assert_eq!(
        err("SELECT * FROM T WHERE x", true),
        "WHERE clause must contain an expression that resolves to a boolean"
    );
    assert_eq!(
        err("SELECT * FROM T.idx WHERE pk = 'a'", true),
        "The table does not have the specified index: idx"
    );
    assert_eq!(err("SELECT * FROM T WHERE pk = 'a' AND x IS FOO", true), "Unsupported data type for IS operator: FOO. Supported data types are [MISSING, NULL, BOOLEAN, BLOB, STRING, NUMERIC, STRUCT, TUPLE, LIST]");
    assert!(err("SELECT * FROM T WHERE a[*] = 1", true).starts_with("Wildcard path component"));
}

#[test]
fn insert_builds_the_item_from_literals_and_parameters() {
    let p = planned(
        "INSERT INTO T VALUE {'pk': ?, 'n': -1.5, 'b': true, 'z': null, 'l': [1, 'x'], 'm': {'a': {'b': 2}}, 'ss': <<'a', 'b', 'a'>>, 'ns': <<1, 2>>}",
        false,
        &[s("k")],
    )
    .unwrap();
    let Plan::Write(WritePlan::Insert { item, .. }) = p else {
        panic!()
    };
    assert_eq!(item.get("pk"), Some(&s("k")));
    assert_eq!(item.get("n"), Some(&n("-1.5")));
    assert_eq!(item.get("b"), Some(&AttributeValue::Bool(true)));
    assert_eq!(item.get("z"), Some(&AttributeValue::Null));
    assert_eq!(
        item.get("l"),
        Some(&AttributeValue::L(vec![n("1"), s("x")]))
    );
    assert_eq!(
        item.get("ss"),
        Some(&AttributeValue::Ss(vec!["a".into(), "b".into()]))
    );
    assert!(matches!(item.get("ns"), Some(AttributeValue::Ns(v)) if v.len() == 2));
    assert!(matches!(item.get("m"), Some(AttributeValue::M(_))));
}

#[test]
fn insert_errors() {
    assert_eq!(
        err("INSERT INTO T VALUE {'n': 1}", false),
        "Key attribute should be present in the item: Key pk"
    );
    assert_eq!(
        err("INSERT INTO T VALUE {'pk': 1}", false),
        "Key attribute's data type should match its data type in table's schema: Key pk"
    );
    assert_eq!(
        err("INSERT INTO T VALUE {'pk': 'a', 'pk': 'b'}", false),
        "Duplicate keys in tuple. Key: pk under root at 1:33:4"
    );
    assert_eq!(
        err("INSERT INTO T VALUE {'pk': 'a', 'e': <<>>}", false),
        "Empty bags are not supported at 1:38:2"
    );
    assert_eq!(
        err("INSERT INTO T VALUE {'pk': 'a', 'e': <<1, 'a'>>}", false),
        "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags"
    );
    assert_eq!(
        err("INSERT INTO T VALUE {\"pk\": 'a'}", false),
        "Tuple keys must be of type String. Actual type: VariableReference under root at 1:22:4"
    );
    assert!(
        err("INSERT INTO T VALUE [1]", false).starts_with("Unsupported format in item expression.")
    );
    assert!(err("INSERT INTO T VALUE {'pk': ''}", false)
        .contains("cannot contain an empty string value. Key: pk"));
}

#[test]
fn update_needs_the_full_key_and_keeps_other_terms_as_conditions() {
    let p = planned(
        "UPDATE T SET a = a + 1, b = list_append(b, [1]), c = if_not_exists(c, 0), s = set_add(s, <<'x'>>) REMOVE d WHERE pk = ? AND sk = 1 AND a < 10 RETURNING MODIFIED NEW *",
        true,
        &[s("k")],
    )
    .unwrap();
    let Plan::Write(WritePlan::Update {
        key,
        update,
        condition,
        returning,
        ..
    }) = p
    else {
        panic!()
    };
    assert_eq!(
        key,
        Item::from([("pk".into(), s("k")), ("sk".into(), n("1"))])
    );
    assert_eq!(update.set.len(), 3);
    assert_eq!(update.add.len(), 1);
    assert_eq!(update.remove.len(), 1);
    assert_eq!(
        returning,
        Some(Returning {
            all: false,
            new: true
        })
    );
    let item = Item::from([
        ("pk".into(), s("k")),
        ("sk".into(), n("1")),
        ("a".into(), n("5")),
    ]);
    assert!(condition.evaluate(Some(&item)).unwrap());
    assert!(!condition.evaluate(None).unwrap());

    let incomplete = "Where clause does not contain a mandatory equality on all key attributes";
    assert_eq!(err("UPDATE T SET a = 1 WHERE pk = 'a'", true), incomplete);
    assert_eq!(
        err("UPDATE T SET a = 1 WHERE pk = 'a' AND sk > 1", true),
        incomplete
    );
    assert_eq!(err("UPDATE T SET a = 1", false), incomplete);
    assert_eq!(
        err("UPDATE T SET a = 1 WHERE pk = 'a' OR a = 2", false),
        incomplete
    );
    assert_eq!(
        err("UPDATE T SET a = 1 WHERE pk IN ['a']", false),
        incomplete
    );
    assert_eq!(
        err("UPDATE T SET a = 1 WHERE pk = 'a' AND pk = 'b'", false),
        "Multiple conditions on same key pk. Only single item Update/Insert/Delete are supported"
    );
    assert_eq!(
        err("UPDATE T SET pk = 'x' WHERE pk = 'a'", false),
        "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key"
    );
    assert_eq!(
        err("UPDATE T SET s = set_add(t, <<'x'>>) WHERE pk = 'a'", false),
        "The first argument to SET_ADD must equal the assignment value"
    );
    assert_eq!(
        err("UPDATE T SET s = set_delete(s, 'x') WHERE pk = 'a'", false),
        "The second argument to SET_DELETE must be a value with type SET"
    );
}

#[test]
fn delete_allows_only_returning_all_old() {
    let p = planned(
        "DELETE FROM T WHERE pk = 'a' AND n = 1 RETURNING ALL OLD *",
        false,
        &[],
    )
    .unwrap();
    let Plan::Write(WritePlan::Delete {
        condition,
        returning,
        ..
    }) = p
    else {
        panic!()
    };
    assert!(condition.is_some());
    assert_eq!(
        returning,
        Some(Returning {
            all: true,
            new: false
        })
    );
    assert_eq!(
        err("DELETE FROM T WHERE pk = 'a' RETURNING ALL NEW *", false),
        "Invalid returning clause: RETURNING ALL NEW *. Only RETURNING ALL OLD * is allowed in DELETE statements."
    );
    let p = planned("DELETE FROM T WHERE pk = 'a'", false, &[]).unwrap();
    assert!(matches!(
        p,
        Plan::Write(WritePlan::Delete {
            condition: None,
            ..
        })
    ));
}

#[test]
fn exists_is_a_condition_check_on_one_item() {
    let p = planned(
        "EXISTS(SELECT * FROM T WHERE pk = 'a' AND n = 5)",
        false,
        &[],
    )
    .unwrap();
    let Plan::Write(WritePlan::Check { condition, .. }) = p else {
        panic!()
    };
    assert!(!condition.evaluate(None).unwrap());
    assert_eq!(
        err("EXISTS(SELECT * FROM T WHERE n = 5)", false),
        "EXISTS() must contain a single item read with additional condition"
    );
}

#[test]
fn select_on_an_index_queries_or_scans_it() {
    let mut d = def(true);
    d.global_indexes.push(IndexDefinition {
        name: "byG".into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "g".into(),
                scalar_type: ScalarType::S,
            },
            range: None,
        },
        projection: Projection::All,
        throughput: None,
    });
    let plan_on = |text: &str, consistent: bool| {
        let (stmt, _) = parse(text).unwrap();
        plan(&stmt, &d, &[], consistent)
    };
    let Ok(Plan::Read(r)) = plan_on("SELECT * FROM T.byG WHERE g = 'x' AND v > 1", false) else {
        panic!()
    };
    assert_eq!(r.index.as_deref(), Some("byG"));
    assert_eq!(
        r.access,
        Access::Query {
            hash: s("x"),
            sort: None,
            forward: true
        }
    );
    let Ok(Plan::Read(r)) = plan_on("SELECT * FROM T.byG", false) else {
        panic!()
    };
    assert_eq!(r.access, Access::Scan);
    let e = plan_on("SELECT * FROM T.byG WHERE g = 'x'", true).unwrap_err();
    assert_eq!(
        e.message,
        "Strongly consistent read is not supported on Global Secondary Indexes"
    );
    let e = plan_on("SELECT * FROM T.byG WHERE g = 1", false).unwrap_err();
    assert_eq!(
        e.message,
        "Key attribute's data type should match its data type in table's schema: Key g"
    );
}

//! UpdateExpression parsing and application.

use super::*;

#[test]
fn parses_into_clauses() {
    let r = Req::new()
        .name("#c", "count")
        .value(":v", s("x"))
        .value(":e", l(vec![]))
        .value(":n", ni(1))
        .value(":s", ss(&["a"]));
    let u = ok(r.update("SET a = :v, #c = #c + :n, l = list_append(if_not_exists(l, :e), :e) REMOVE b, c[2] ADD d :n DELETE e :s"));
    assert_eq!(u.set.len(), 3);
    assert_eq!(
        u.set[0],
        (path(&["a"]), SetValue::Operand(Operand::Value(s("x"))))
    );
    assert_eq!(
        u.set[1],
        (
            path(&["count"]),
            SetValue::Plus(
                Box::new(SetValue::Operand(Operand::Path(path(&["count"])))),
                Box::new(SetValue::Operand(Operand::Value(ni(1))))
            )
        )
    );
    assert_eq!(
        u.set[2].1,
        SetValue::ListAppend(
            Box::new(SetValue::IfNotExists(
                path(&["l"]),
                Box::new(SetValue::Operand(Operand::Value(l(vec![]))))
            )),
            Box::new(SetValue::Operand(Operand::Value(l(vec![]))))
        )
    );
    assert_eq!(u.remove, vec![path(&["b"]), path(&["c", "2"])]);
    assert_eq!(u.add, vec![(path(&["d"]), ni(1))]);
    assert_eq!(u.delete, vec![(path(&["e"]), ss(&["a"]))]);
    assert_eq!(
        u.top_level_attributes(),
        vec!["a", "count", "l", "b", "c", "d", "e"]
    );
}

#[test]
fn set_and_arithmetic() {
    let it = item(&[
        ("pk", s("k")),
        ("c", n("10")),
        ("m", m(&[("counter", n("10"))])),
        ("myval", s("original")),
    ]);
    let r = Req::new()
        .name("#m", "m")
        .name("#c", "counter")
        .name("#bk", "backup")
        .name("#mv", "myval")
        .value(":inc", n("5"))
        .value(":v", s("new"));
    let out = ok(r.apply("SET #m.#c = #m.#c + :inc, c = c - :inc, x = :v", &it));
    assert_eq!(out.get("m"), Some(&m(&[("counter", n("15"))])));
    assert_eq!(out.get("c"), Some(&n("5")));
    assert_eq!(out.get("x"), Some(&s("new")));
    let out = ok(r.apply("SET #bk = if_not_exists(#bk, #mv)", &it));
    assert_eq!(out.get("backup"), Some(&s("original")));
    let out = ok(r.apply("SET #mv = if_not_exists(#mv, :v)", &it));
    assert_eq!(out.get("myval"), Some(&s("original")));
    // Right-hand sides see the item as it was before the update.
    let r2 = Req::new().value(":v", s("new"));
    let out = ok(r2.apply("SET a = myval, myval = :v", &it));
    assert_eq!(out.get("a"), Some(&s("original")));
    assert_eq!(out.get("myval"), Some(&s("new")));
}

#[test]
fn update_errors() {
    let it = item(&[
        ("pk", s("k")),
        ("str", s("x")),
        ("num", ni(1)),
        ("m", m(&[])),
        ("tags", ss(&["a"])),
    ]);
    let r = Req::new()
        .value(":n", ni(1))
        .value(":v", s("v"))
        .value(":l", l(vec![]))
        .value(":ns", AttributeValue::Ns(vec![Number::from_i64(1)]))
        .value(":ss", ss(&["b"]));
    let invalid = "The document path provided in the update expression is invalid for update";
    let bad_type = "An operand in the update expression has an incorrect data type";
    let missing = "The provided expression refers to an attribute that does not exist in the item";
    assert_eq!(err(r.apply("SET absent.nested.deep = :v", &it)), invalid);
    assert_eq!(err(r.apply("SET str.x = :v", &it)), invalid);
    assert_eq!(err(r.apply("SET m[0] = :v", &it)), invalid);
    assert_eq!(err(r.apply("SET str[0] = :v", &it)), invalid);
    assert_eq!(err(r.apply("SET a = str + :n", &it)), bad_type);
    assert_eq!(err(r.apply("SET a = nothing + :n", &it)), missing);
    assert_eq!(err(r.apply("SET a = nothing", &it)), missing);
    assert_eq!(err(r.apply("SET a = list_append(str, :l)", &it)), bad_type);
    assert_eq!(err(r.apply("ADD str :n", &it)), bad_type);
    assert_eq!(err(r.apply("ADD tags :ns", &it)), bad_type);
    assert_eq!(err(r.apply("DELETE num :ss", &it)), bad_type);
    assert_eq!(err(r.apply("ADD absent.x :n", &it)), invalid);
    // A failed update leaves the item unchanged.
    let u = ok(r.update("SET ok1 = :v, str.x = :v"));
    let mut copy = it.clone();
    assert!(u.apply(&mut copy).is_err());
    assert_eq!(copy, it);
}

#[test]
fn number_overflow_comes_from_number() {
    let it = item(&[("big", n("9E+125"))]);
    let r = Req::new()
        .value(":n", n("9E+125"))
        .value(":m", n("-9E+125"));
    assert_eq!(
        err(r.apply("SET big = big + :n", &it)),
        "Number overflow. Attempting to store a number with magnitude larger than supported range"
    );
    assert_eq!(
        err(r.apply("ADD big :n", &it)),
        "Number overflow. Attempting to store a number with magnitude larger than supported range"
    );
    assert_eq!(
        err(r.apply("SET big = :m - big", &it)),
        "Number overflow. Attempting to store a number with magnitude larger than supported range"
    );
}

#[test]
fn list_indexes() {
    let abc = item(&[
        ("l", l(vec![s("a"), s("b"), s("c"), s("d")])),
        ("e", l(vec![])),
    ]);
    let r = Req::new().value(":v", s("x")).value(":w", s("y"));
    let out = ok(r.apply("SET l[5] = :v", &abc));
    assert_eq!(
        out.get("l"),
        Some(&l(vec![s("a"), s("b"), s("c"), s("d"), s("x")]))
    );
    let out = ok(r.apply("SET l[1] = :v", &abc));
    assert_eq!(out.get("l"), Some(&l(vec![s("a"), s("x"), s("c"), s("d")])));
    let out = ok(r.apply("SET e[0] = :v", &abc));
    assert_eq!(out.get("e"), Some(&l(vec![s("x")])));
    let out = ok(r.apply("REMOVE l[1]", &abc));
    assert_eq!(out.get("l"), Some(&l(vec![s("a"), s("c"), s("d")])));
    let out = ok(r.apply("REMOVE l[3]", &abc));
    assert_eq!(out.get("l"), Some(&l(vec![s("a"), s("b"), s("c")])));
    let out = ok(r.apply("REMOVE l[1], l[3]", &abc));
    assert_eq!(
        out.get("l"),
        Some(&l(vec![s("a"), s("c")])),
        "indexes refer to the original list"
    );
    let out = ok(r.apply("REMOVE l[0] SET l[1] = :v", &abc));
    assert_eq!(out.get("l"), Some(&l(vec![s("x"), s("c"), s("d")])));
    let out = ok(r.apply("REMOVE l[9]", &abc));
    assert_eq!(
        out.get("l"),
        abc.get("l"),
        "removing past the end is a no-op"
    );
    let prepend = Req::new().value(":l2", l(vec![s("z")]));
    let out = ok(prepend.apply("SET l = list_append(l, :l2)", &abc));
    assert_eq!(
        out.get("l"),
        Some(&l(vec![s("a"), s("b"), s("c"), s("d"), s("z")]))
    );
    let out = ok(prepend.apply("SET l = list_append(:l2, l)", &abc));
    assert_eq!(
        out.get("l"),
        Some(&l(vec![s("z"), s("a"), s("b"), s("c"), s("d")]))
    );
}

#[test]
fn remove_nested_and_top_level() {
    let it = item(&[
        ("pk", s("k")),
        ("m", m(&[("nested", s("gone")), ("keep", s("stay"))])),
        ("x", ni(1)),
    ]);
    let r = Req::new();
    let out = ok(r.apply("REMOVE m.nested, x, absent", &it));
    assert_eq!(
        out,
        item(&[("pk", s("k")), ("m", m(&[("keep", s("stay"))]))])
    );
    let out = ok(r.apply("REMOVE m.absent", &it));
    assert_eq!(out, it);
    assert_eq!(
        err(r.apply("REMOVE nothing.here", &it)),
        "The document path provided in the update expression is invalid for update"
    );
}

#[test]
fn add_and_delete() {
    let it = item(&[
        ("c", ni(5)),
        ("tags", ss(&["a", "b"])),
        (
            "nums",
            AttributeValue::Ns(vec![Number::from_i64(1), Number::from_i64(2)]),
        ),
        ("bins", AttributeValue::Bs(vec![vec![1], vec![2]])),
    ]);
    let r = Req::new()
        .value(":n", ni(3))
        .value(":s", ss(&["b", "c"]))
        .value(":ab", ss(&["a", "b"]))
        .value(
            ":ns",
            AttributeValue::Ns(vec![Number::from_i64(2), Number::from_i64(3)]),
        )
        .value(":bs", AttributeValue::Bs(vec![vec![2]]));
    let out = ok(r.apply("ADD c :n, tags :s, nums :ns, newc :n, newset :s", &it));
    assert_eq!(out.get("c"), Some(&ni(8)));
    assert_eq!(out.get("tags"), Some(&ss(&["a", "b", "c"])));
    assert_eq!(
        out.get("nums"),
        Some(&AttributeValue::Ns(vec![
            Number::from_i64(1),
            Number::from_i64(2),
            Number::from_i64(3)
        ]))
    );
    assert_eq!(out.get("newc"), Some(&ni(3)));
    assert_eq!(out.get("newset"), Some(&ss(&["b", "c"])));
    let out = ok(r.apply("DELETE tags :s, nums :ns, bins :bs, absent :s", &it));
    assert_eq!(out.get("tags"), Some(&ss(&["a"])));
    assert_eq!(
        out.get("nums"),
        Some(&AttributeValue::Ns(vec![Number::from_i64(1)]))
    );
    assert_eq!(out.get("bins"), Some(&AttributeValue::Bs(vec![vec![1]])));
    assert!(!out.contains_key("absent"));
    let out = ok(r.apply("DELETE tags :ab", &it));
    assert!(!out.contains_key("tags"), "an emptied set is removed");
}

#[test]
fn number_sets_compare_numerically() {
    let it = item(&[(
        "nums",
        AttributeValue::Ns(vec![Number::from_i64(1), Number::from_i64(20)]),
    )]);
    let r = Req::new()
        .value(
            ":add",
            AttributeValue::Ns(vec![match Number::parse("1.0") {
                Ok(x) => x,
                Err(e) => panic!("{e}"),
            }]),
        )
        .value(
            ":del",
            AttributeValue::Ns(vec![match Number::parse("2E1") {
                Ok(x) => x,
                Err(e) => panic!("{e}"),
            }]),
        );
    let out = ok(r.apply("ADD nums :add", &it));
    assert_eq!(out.get("nums"), it.get("nums"));
    let out = ok(r.apply("DELETE nums :del", &it));
    assert_eq!(
        out.get("nums"),
        Some(&AttributeValue::Ns(vec![Number::from_i64(1)]))
    );
}

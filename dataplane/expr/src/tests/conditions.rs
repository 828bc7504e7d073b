//! Condition parsing into resolved ASTs and evaluation.

use super::*;

fn sample() -> Item {
    item(&[
        ("pk", s("fo-1")),
        ("str", s("banana")),
        ("num", n("10")),
        ("bin", AttributeValue::B(vec![3, 4])),
        ("tags", ss(&["a", "b"])),
        (
            "nums",
            AttributeValue::Ns(vec![Number::from_i64(1), Number::from_i64(2)]),
        ),
        ("lst", l(vec![s("first"), ni(2), m(&[("k", s("v"))])])),
        (
            "mp",
            m(&[("nested", s("deep")), ("inr", m(&[("x", ni(5))]))]),
        ),
        ("flag", AttributeValue::Bool(true)),
        ("nil", AttributeValue::Null),
        ("uni", s("héllo")),
    ])
}

#[test]
fn resolves_placeholders_into_the_ast() {
    let r = Req::new()
        .name("#m", "mp")
        .name("#n", "nested")
        .value(":v", s("deep"));
    assert_eq!(
        ok(r.cond("#m.#n = :v")),
        Condition::Compare(
            Operand::Path(path(&["mp", "nested"])),
            CompareOp::Eq,
            Operand::Value(s("deep"))
        )
    );
    assert_eq!(
        ok(r.cond("size(#m) > :v OR NOT attribute_exists(lst[2].k)")),
        Condition::Or(
            Box::new(Condition::Compare(
                Operand::Size(path(&["mp"])),
                CompareOp::Gt,
                Operand::Value(s("deep"))
            )),
            Box::new(Condition::Not(Box::new(Condition::AttributeExists(path(
                &["lst", "2", "k"]
            ))))),
        )
    );
}

#[test]
fn comparisons_follow_dynamodb_types() {
    let it = sample();
    let r = Req::new()
        .value(":s", s("banana"))
        .value(":a", s("apple"))
        .value(":n", n("10"))
        .value(":n9", n("9.5"))
        .value(":sn", s("10"))
        .value(":b", AttributeValue::B(vec![3, 4]))
        .value(":b2", AttributeValue::B(vec![3]));
    assert!(r.check("str = :s", &it));
    assert!(r.check("str > :a", &it));
    assert!(r.check("str <= :s", &it));
    assert!(!r.check("str < :s", &it));
    assert!(r.check("num = :n", &it));
    assert!(r.check("num > :n9", &it));
    assert!(r.check("num >= :n", &it));
    assert!(
        !r.check("num = :sn", &it),
        "different types are never equal"
    );
    assert!(!r.check("num < :sn", &it), "different types do not order");
    assert!(!r.check("num >= :sn", &it));
    assert!(r.check("num <> :sn", &it), "<> is true for different types");
    assert!(r.check("bin > :b2", &it));
    assert!(r.check("bin = :b", &it));
    assert!(!r.check("absent2 = :s", &it));
    assert!(!r.check("absent2 < :s", &it));
    assert!(
        r.check("absent2 <> :s", &it),
        "<> is true when the attribute is absent2"
    );
    assert!(r.check(":s = str", &it), "values may stand on the left");
}

#[test]
fn numbers_compare_numerically() {
    let it = item(&[("x", n("100"))]);
    let r = Req::new()
        .value(":a", n("1e2"))
        .value(":b", n("99.99"))
        .value(":c", n("-5"));
    assert!(r.check("x = :a", &it));
    assert!(r.check("x > :b AND :c < x", &it));
    assert!(r.check("x BETWEEN :b AND :a", &it));
}

#[test]
fn documents_and_sets_compare_by_value() {
    let it = sample();
    let r = Req::new()
        .value(":set", ss(&["b", "a"]))
        .value(":other", ss(&["a", "c"]))
        .value(":list", l(vec![s("first"), ni(2), m(&[("k", s("v"))])]))
        .value(
            ":map",
            m(&[("inr", m(&[("x", ni(5))])), ("nested", s("deep"))]),
        )
        .value(
            ":nums",
            AttributeValue::Ns(vec![Number::from_i64(2), Number::from_i64(1)]),
        );
    assert!(
        r.check("tags = :set", &it),
        "sets compare regardless of order"
    );
    assert!(r.check("tags <> :other", &it));
    assert!(r.check("lst = :list", &it));
    assert!(r.check("mp = :map", &it));
    assert!(r.check("nums = :nums", &it));
    assert!(!r.check("tags = :nums", &it));
}

#[test]
fn between_and_in() {
    let it = sample();
    let r = Req::new()
        .value(":lo", s("apple"))
        .value(":hi", s("cherry"))
        .value(":x", s("x"))
        .value(":s", s("banana"))
        .value(":n", n("10"));
    assert!(r.check("str BETWEEN :lo AND :hi", &it));
    assert!(
        r.check("str BETWEEN :s AND :s", &it),
        "bounds are inclusive"
    );
    assert!(!r.check("str BETWEEN :hi AND :x", &it));
    assert!(!r.check("num BETWEEN :lo AND :hi", &it));
    assert!(r.check("str IN (:x, :s)", &it));
    assert!(!r.check("str IN (:x, :n)", &it));
    assert!(r.check("num IN (:x, :n)", &it));
    assert!(!r.check("absent2 IN (:x, :n)", &it));
}

#[test]
fn functions() {
    let it = sample();
    let r = Req::new()
        .value(":p", s("ban"))
        .value(":an", s("an"))
        .value(":a", s("a"))
        .value(":z", s("z"))
        .value(":bp", AttributeValue::B(vec![3]))
        .value(":two", ni(2))
        .value(":three", ni(3))
        .value(":six", ni(6))
        .value(":first", s("first"))
        .value(":S", s("S"))
        .value(":SS", s("SS"))
        .value(":NULL", s("NULL"))
        .value(":BOOL", s("BOOL"))
        .value(":M", s("M"));
    assert!(r.check("begins_with(str, :p)", &it));
    assert!(!r.check("begins_with(str, :an)", &it));
    assert!(r.check("begins_with(bin, :bp)", &it));
    assert!(!r.check("begins_with(tags, :a)", &it));
    assert!(r.check("contains(str, :an)", &it));
    assert!(r.check("contains(tags, :a)", &it));
    assert!(!r.check("contains(tags, :z)", &it));
    assert!(r.check("contains(nums, :two)", &it));
    assert!(r.check("contains(lst, :first)", &it));
    assert!(r.check("contains(lst, :two)", &it));
    assert!(!r.check("contains(num, :two)", &it));
    assert!(r.check(
        "attribute_exists(mp.inr.x) AND attribute_not_exists(mp.nope)",
        &it
    ));
    assert!(r.check(
        "attribute_exists(lst[2].k) AND attribute_not_exists(lst[3])",
        &it
    ));
    assert!(r.check("attribute_exists(nil)", &it), "a NULL value exists");
    assert!(r.check("attribute_type(str, :S) AND attribute_type(tags, :SS)", &it));
    assert!(r.check(
        "attribute_type(nil, :NULL) AND attribute_type(flag, :BOOL)",
        &it
    ));
    assert!(r.check("attribute_type(mp, :M)", &it));
    assert!(!r.check("attribute_type(absent2, :S)", &it));
    assert!(r.check("size(str) = :six", &it));
    assert!(r.check("size(bin) = :two", &it));
    assert!(r.check("size(tags) = :two", &it));
    assert!(r.check("size(lst) = :three", &it));
    assert!(r.check("size(mp) = :two", &it));
    assert!(
        r.check("size(uni) = :six", &it),
        "size of a string counts UTF-8 bytes"
    );
    assert!(!r.check("size(num) = :two", &it), "numbers have no size");
    assert!(!r.check("size(absent2) = :two", &it));
    assert!(r.check("size(absent2) <> :two", &it));
}

#[test]
fn boolean_logic_and_missing_items() {
    let it = sample();
    let r = Req::new().value(":s", s("banana")).value(":x", s("x"));
    assert!(r.check("str = :x OR str = :s", &it));
    assert!(!r.check("str = :x AND str = :s", &it));
    assert!(r.check("NOT str = :x", &it));
    assert!(r.check("NOT NOT str = :s", &it));
    assert!(r.check("str = :x OR str = :s AND NOT str = :x", &it));
    assert!(!r.check("(str = :x OR str = :s) AND str = :x", &it));
    let c = ok(r.cond("attribute_not_exists(pk)"));
    assert_eq!(c.evaluate(None), Ok(true));
    let c = ok(r.cond("str = :s"));
    assert_eq!(c.evaluate(None), Ok(false));
}

#[test]
fn directly_built_conditions_report_bad_type_names() {
    let c = Condition::AttributeType(path(&["a"]), Operand::Value(s("Q")));
    assert_eq!(
        c.evaluate(Some(&sample())).map_err(|e| e.message),
        Err("Invalid ConditionExpression: Invalid attribute type name found; type: Q, valid types: {B,NULL,SS,BOOL,L,BS,N,NS,S,M}".to_string())
    );
}

#[test]
fn longest_expressions_do_not_exhaust_the_stack() {
    let r = Req::new().value(":v", s("x"));
    let it = item(&[("a", s("x"))]);
    let mut chain = String::from("a=:v");
    while chain.len() + 9 <= MAX_EXPRESSION_BYTES {
        chain.push_str(" AND a=:v");
    }
    assert_eq!(ok(r.cond(&chain)).evaluate(Some(&it)), Ok(true));
    let mut ors = String::from("(NOT a=:v)");
    while ors.len() + 12 <= MAX_EXPRESSION_BYTES {
        ors.push_str("OR(NOT a=:v)");
    }
    assert_eq!(ok(r.cond(&ors)).evaluate(Some(&it)), Ok(false));
}

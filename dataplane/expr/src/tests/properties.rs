//! Property tests: path display/parse round trips, NOT negates, and no
//! input makes the parsers panic.

use proptest::prelude::*;

use super::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,6}".prop_filter("not reserved", |s| !crate::reserved::is_reserved(s))
}

fn element() -> impl Strategy<Value = PathElement> {
    prop_oneof![
        name().prop_map(PathElement::Attribute),
        (0usize..50).prop_map(PathElement::Index)
    ]
}

fn any_path() -> impl Strategy<Value = Path> {
    (name(), proptest::collection::vec(element(), 0..8)).prop_map(|(first, rest)| {
        let mut elems = vec![PathElement::Attribute(first)];
        elems.extend(rest);
        Path(elems)
    })
}

fn scalar() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        "[ab]{0,3}".prop_map(AttributeValue::S),
        (-3i64..4).prop_map(|i| AttributeValue::N(Number::from_i64(i))),
        proptest::collection::vec(0u8..3, 0..3).prop_map(AttributeValue::B),
        any::<bool>().prop_map(AttributeValue::Bool),
        Just(AttributeValue::Null),
        proptest::collection::vec("[ab]{1,2}", 1..3).prop_map(|mut v| {
            v.sort();
            v.dedup();
            AttributeValue::Ss(v)
        }),
    ]
}

fn value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        4 => scalar(),
        1 => proptest::collection::vec(scalar(), 0..3).prop_map(AttributeValue::L),
        1 => proptest::collection::btree_map("[xy]", scalar(), 0..3).prop_map(AttributeValue::M),
    ]
}

fn random_item() -> impl Strategy<Value = Item> {
    proptest::collection::btree_map("[abc]", value(), 0..4)
}

fn operand() -> impl Strategy<Value = Operand> {
    let p = prop_oneof![
        "[abcd]".prop_map(Path::attribute),
        ("[abc]", "[xy]")
            .prop_map(|(a, b)| Path(vec![PathElement::Attribute(a), PathElement::Attribute(b)])),
        ("[abc]", 0usize..3)
            .prop_map(|(a, i)| Path(vec![PathElement::Attribute(a), PathElement::Index(i)])),
    ];
    prop_oneof![
        p.clone().prop_map(Operand::Path),
        value().prop_map(Operand::Value),
        p.prop_map(Operand::Size),
    ]
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Lt),
        Just(CompareOp::Le),
        Just(CompareOp::Gt),
        Just(CompareOp::Ge),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    let leaf = prop_oneof![
        (operand(), compare_op(), operand()).prop_map(|(a, op, b)| Condition::Compare(a, op, b)),
        (operand(), operand(), operand()).prop_map(|(a, b, c)| Condition::Between(a, b, c)),
        (operand(), proptest::collection::vec(operand(), 1..4))
            .prop_map(|(a, l)| Condition::In(a, l)),
        "[abcd]".prop_map(|a| Condition::AttributeExists(Path::attribute(a))),
        "[abcd]".prop_map(|a| Condition::AttributeNotExists(Path::attribute(a))),
        (
            "[abcd]",
            prop_oneof![Just("S"), Just("N"), Just("L"), Just("M"), Just("NULL")]
        )
            .prop_map(|(a, t)| Condition::AttributeType(Path::attribute(a), Operand::Value(s(t)))),
        (operand(), operand()).prop_map(|(a, b)| Condition::BeginsWith(a, b)),
        (operand(), operand()).prop_map(|(a, b)| Condition::Contains(a, b)),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Condition::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Condition::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Condition::Not(Box::new(a))),
        ]
    })
}

proptest! {
    #[test]
    fn path_display_parses_back(p in any_path()) {
        let text = p.to_string();
        let parsed = parse_projection(&text, &mut ExpressionAttributes::default());
        prop_assert_eq!(parsed, Ok(ProjectionExpression(vec![p])));
    }

    #[test]
    fn not_negates(c in condition(), it in random_item()) {
        let plain = c.evaluate(Some(&it));
        let negated = Condition::Not(Box::new(c)).evaluate(Some(&it));
        prop_assert_eq!(negated, plain.map(|b| !b));
    }

    #[test]
    fn projecting_every_attribute_is_identity(it in random_item()) {
        let proj = ProjectionExpression(it.keys().map(Path::attribute).collect());
        prop_assert_eq!(proj.apply(&it), it);
    }

    #[test]
    fn parsers_never_panic(src in "[a-c#:()\\[\\]0-9 ,.=<>+!-]{0,40}|(SET|REMOVE|ADD|DELETE|AND|OR|NOT|BETWEEN|IN|size|[a-c#:()0-9 ,.=<>+-]){0,20}") {
        let names: HashMap<String, String> = [("#a".to_string(), "a".to_string())].into();
        let values: HashMap<String, AttributeValue> = [(":a".to_string(), ni(1)), (":b".to_string(), ss(&["x"]))].into();
        let mut attrs = ExpressionAttributes::new(Some(&names), Some(&values));
        let _ = parse_condition(ExpressionKind::Filter, &src, &mut attrs);
        let _ = parse_update(&src, &mut attrs);
        let _ = parse_projection(&src, &mut attrs);
        let _ = parse_key_condition(&src, &mut attrs, "a", Some("b"));
        if let Ok(u) = parse_update(&src, &mut attrs) {
            let mut it = item(&[("a", l(vec![ni(1)])), ("b", ss(&["x", "y"]))]);
            let _ = u.apply(&mut it);
        }
        if let Ok(c) = parse_condition(ExpressionKind::Condition, &src, &mut attrs) {
            let _ = c.evaluate(None);
        }
    }
}

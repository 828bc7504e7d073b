//! ProjectionExpression parsing and application.

use super::*;

fn doc() -> Item {
    item(&[
        ("pk", s("k")),
        ("a", s("x")),
        ("b", ni(1)),
        (
            "m",
            m(&[
                ("n", s("deep")),
                ("o", m(&[("p", ni(1)), ("q", ni(2))])),
                ("r", s("other")),
            ]),
        ),
        (
            "l",
            l(vec![
                s("l0"),
                m(&[("x", ni(1)), ("y", ni(2))]),
                s("l2"),
                s("l3"),
            ]),
        ),
    ])
}

fn project(expr: &str, names: &[(&str, &str)]) -> Item {
    let mut r = Req::new();
    for (k, v) in names {
        r = r.name(k, v);
    }
    ok(r.projection(expr)).apply(&doc())
}

#[test]
fn top_level_attributes() {
    assert_eq!(
        project("a, pk, absent", &[]),
        item(&[("a", s("x")), ("pk", s("k"))])
    );
}

#[test]
fn nested_maps_keep_their_structure() {
    assert_eq!(
        project("#m.#n", &[("#m", "m"), ("#n", "n")]),
        item(&[("m", m(&[("n", s("deep"))]))])
    );
    assert_eq!(
        project("m.o.q, m.n", &[]),
        item(&[("m", m(&[("n", s("deep")), ("o", m(&[("q", ni(2))]))]))])
    );
    assert_eq!(
        project("m.zzz", &[]),
        Item::new(),
        "nothing found, nothing returned"
    );
    assert_eq!(project("a.b", &[]), Item::new(), "a string has no fields");
}

#[test]
fn list_elements_are_packed_in_order() {
    assert_eq!(
        project("#l[0]", &[("#l", "l")]),
        item(&[("l", l(vec![s("l0")]))])
    );
    assert_eq!(
        project("l[3], l[0]", &[]),
        item(&[("l", l(vec![s("l0"), s("l3")]))])
    );
    assert_eq!(
        project("l[1].y", &[]),
        item(&[("l", l(vec![m(&[("y", ni(2))])]))])
    );
    assert_eq!(project("l[9]", &[]), Item::new());
    assert_eq!(
        project("m.n, l[1]", &[]),
        item(&[
            ("m", m(&[("n", s("deep"))])),
            ("l", l(vec![m(&[("x", ni(1)), ("y", ni(2))])]))
        ])
    );
}

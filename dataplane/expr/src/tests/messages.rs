//! Exact DynamoDB error messages (the conformance suite's where it has one).

use super::*;

#[test]
fn empty_expressions() {
    let r = Req::new();
    assert_eq!(
        err(r.update("")),
        "Invalid UpdateExpression: The expression can not be empty;"
    );
    assert_eq!(
        err(r.cond("  ")),
        "Invalid ConditionExpression: The expression can not be empty;"
    );
    assert_eq!(
        err(r.key("", "pk", None)),
        "Invalid KeyConditionExpression: The expression can not be empty;"
    );
    assert_eq!(
        err(r.projection("")),
        "Invalid ProjectionExpression: The expression can not be empty;"
    );
    assert_eq!(
        err(r.filter("")),
        "Invalid FilterExpression: The expression can not be empty;"
    );
}

#[test]
fn syntax_errors_from_the_conformance_suite() {
    let r = Req::new().value(":v", s("val"));
    assert_eq!(
        err(r.update("INVALID SYNTAX HERE")),
        "Invalid UpdateExpression: Syntax error; token: \"INVALID\", near: \"INVALID SYNTAX\""
    );
    assert_eq!(
        err(r.projection("!!!")),
        "Invalid ProjectionExpression: Syntax error; token: \"!\", near: \"!!\""
    );
    assert_eq!(
        err(r.projection("!!! INVALID !!!")),
        "Invalid ProjectionExpression: Syntax error; token: \"!\", near: \"!!\""
    );
}

#[test]
fn syntax_errors_win_over_semantic_ones() {
    let r = Req::new();
    assert!(err(r.cond("#undefined = :undefined AND")).contains("Syntax error"));
    assert!(err(r.cond("status = :v)")).contains("Syntax error"));
}

#[test]
fn undefined_placeholders() {
    let r = Req::new().value(":fv", s("x"));
    assert_eq!(
        err(r.filter("#missing = :fv")),
        "Invalid FilterExpression: An expression attribute name used in the document path is not defined; attribute name: #missing"
    );
    assert_eq!(
        err(r.update("SET a = :v")),
        "Invalid UpdateExpression: An expression attribute value used in expression is not defined; attribute value: :v"
    );
    assert_eq!(
        err(r.projection("a.#b")),
        "Invalid ProjectionExpression: An expression attribute name used in the document path is not defined; attribute name: #b"
    );
}

#[test]
fn reserved_words() {
    let r = Req::new()
        .value(":val", s("v"))
        .value(":s", s("a"))
        .value(":n", s("b"));
    assert_eq!(
        err(r.cond("status = :val")),
        "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: status"
    );
    assert_eq!(
        err(r.update("SET status = :s, name = :n")),
        "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: status"
    );
    assert_eq!(
        err(r.filter("a.Data = :val")),
        "Invalid FilterExpression: Attribute name is a reserved keyword; reserved keyword: Data"
    );
    assert_eq!(
        err(r.projection("pk, status")),
        "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: status"
    );
    let aliased = Req::new().name("#status", "status").value(":val", s("v"));
    assert!(aliased.cond("#status = :val").is_ok());
}

#[test]
fn unused_placeholders() {
    let names: HashMap<String, String> = [
        ("#unused".to_string(), "x".to_string()),
        ("#b".to_string(), "y".to_string()),
    ]
    .into();
    let values: HashMap<String, AttributeValue> =
        [(":v".to_string(), s("x")), (":unused".to_string(), s("y"))].into();
    let mut attrs = ExpressionAttributes::new(Some(&names), Some(&values));
    assert!(parse_update("SET attr1 = :v", &mut attrs).is_ok());
    assert_eq!(
        attrs.check_all_used().map_err(|e| e.message),
        Err(
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {#b, #unused}"
                .to_string()
        )
    );
    let mut attrs = ExpressionAttributes::new(None, Some(&values));
    assert!(parse_update("SET attr1 = :v", &mut attrs).is_ok());
    assert_eq!(
        attrs.check_all_used().map_err(|e| e.message),
        Err(
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}"
                .to_string()
        )
    );
    // Usage accumulates over the expressions of one request.
    let mut attrs = ExpressionAttributes::new(Some(&names), Some(&values));
    assert!(parse_update("SET #b = :v", &mut attrs).is_ok());
    assert!(parse_condition(ExpressionKind::Condition, "#unused <> :unused", &mut attrs).is_ok());
    assert_eq!(attrs.check_all_used(), Ok(()));
    assert_eq!(
        ExpressionAttributes::new(None, None).check_all_used(),
        Ok(())
    );
}

#[test]
fn function_rules() {
    let r = Req::new()
        .value(":v", s("x"))
        .value(":n", ni(1))
        .value(":t", s("S"));
    assert_eq!(
        err(r.cond("foo(a)")),
        "Invalid ConditionExpression: Invalid function name; function: foo"
    );
    assert_eq!(
        err(r.cond("size(a)")),
        "Invalid ConditionExpression: The function is not allowed to be used this way in an expression; function: size"
    );
    assert_eq!(
        err(r.cond("attribute_exists(a) = :v")),
        "Invalid ConditionExpression: The function is not allowed to be used this way in an expression; function: attribute_exists"
    );
    assert_eq!(
        err(r.cond("begins_with(a)")),
        "Invalid ConditionExpression: Incorrect number of operands for operator or function; operator or function: begins_with, number of operands: 1"
    );
    assert_eq!(
        err(r.cond("attribute_exists(a, b)")),
        "Invalid ConditionExpression: Incorrect number of operands for operator or function; operator or function: attribute_exists, number of operands: 2"
    );
    assert_eq!(
        err(r.cond("begins_with(a, :n)")),
        "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N"
    );
    assert_eq!(
        err(r.cond("attribute_exists(:v)")),
        "Invalid ConditionExpression: Operator or function requires a document path; operator or function: attribute_exists"
    );
    assert_eq!(
        err(r.cond("size(:v) > :n")),
        "Invalid ConditionExpression: Operator or function requires a document path; operator or function: size"
    );
    assert_eq!(
        err(r.cond("list_append(a, :v) = :v")),
        "Invalid ConditionExpression: The function is not allowed in a condition expression; function: list_append"
    );
    assert_eq!(
        err(r.update("SET a = size(b)")),
        "Invalid UpdateExpression: The function is not allowed in an update expression; function: size"
    );
    assert_eq!(
        err(r.update("SET a = if_not_exists(:v, :v)")),
        "Invalid UpdateExpression: Operator or function requires a document path; operator or function: if_not_exists"
    );
    assert_eq!(
        err(r.update("SET a = list_append(a, :v)")),
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: list_append, operand type: S"
    );
    assert_eq!(
        err(r.update("SET a = a + :v")),
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: +, operand type: S"
    );
    assert_eq!(
        err(r.update("SET a = bogus(a)")),
        "Invalid UpdateExpression: Invalid function name; function: bogus"
    );
    // Function names are case-sensitive; keywords are not.
    assert_eq!(
        err(r.cond("ATTRIBUTE_EXISTS(a)")),
        "Invalid ConditionExpression: Invalid function name; function: ATTRIBUTE_EXISTS"
    );
    assert!(r
        .cond("attribute_type(a, :t) and not attribute_exists(b)")
        .is_ok());
}

#[test]
fn attribute_type_names_are_checked() {
    let r = Req::new().value(":t", s("X")).value(":n", ni(1));
    assert_eq!(
        err(r.cond("attribute_type(a, :t)")),
        "Invalid ConditionExpression: Invalid attribute type name found; type: X, valid types: {B,NULL,SS,BOOL,L,BS,N,NS,S,M}"
    );
    assert_eq!(
        err(r.cond("attribute_type(a, :n)")),
        "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: attribute_type, operand type: N"
    );
}

#[test]
fn operator_rules() {
    let r = Req::new()
        .value(":a", ni(10))
        .value(":b", ni(1))
        .value(":t", AttributeValue::Bool(true));
    assert_eq!(
        err(r.cond("x BETWEEN :a AND :b")),
        "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {N:10}, upper bound operand: AttributeValue: {N:1}"
    );
    assert_eq!(
        err(r.cond("x < :t")),
        "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: <, operand type: BOOL"
    );
    assert_eq!(
        err(r.cond("x = x")),
        "Invalid ConditionExpression: The first operand must be distinct from the remaining operands for this operator or function; operator: =, first operand: [x]"
    );
    assert!(r.cond("x = :t").is_ok());
    let mut many = Req::new();
    let list: Vec<String> = (0..101).map(|i| format!(":v{i}")).collect();
    for p in &list {
        many = many.value(p, ni(1));
    }
    assert_eq!(
        err(many.cond(&format!("x IN ({})", list.join(", ")))),
        "Invalid ConditionExpression: The IN operator is provided with too many operands; number of operands: 101"
    );
    assert!(many
        .cond(&format!("x IN ({})", list[..100].join(", ")))
        .is_ok());
}

#[test]
fn redundant_parentheses() {
    let r = Req::new().value(":v", s("x"));
    assert_eq!(
        err(r.cond("((a = :v))")),
        "Invalid ConditionExpression: The expression has redundant parentheses;"
    );
    assert_eq!(
        err(r.cond("((a = :v)) AND ((b = :v))")),
        "Invalid ConditionExpression: The expression has redundant parentheses;"
    );
    for good in [
        "(a = :v)",
        "(a = :v AND (b = :v))",
        "(a = :v) AND ((b = :v) OR (c = :v))",
        "NOT (a = :v)",
    ] {
        assert!(r.cond(good).is_ok(), "{good}");
    }
}

#[test]
fn update_structure_rules() {
    let r = Req::new()
        .value(":v", s("x"))
        .value(":n", ni(1))
        .value(":s", ss(&["a"]));
    assert_eq!(
        err(r.update("SET a = :v REMOVE b SET c = :v")),
        "Invalid UpdateExpression: The \"SET\" section can only be used once in an update expression;"
    );
    assert_eq!(
        err(r.update("SET a = :v, a.b = :v")),
        "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]"
    );
    assert_eq!(
        err(r.update("SET #v = :v, #v = :n".replace("#v", "val").as_str())),
        "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [val], path two: [val]"
    );
    assert_eq!(
        err(r.update("SET a.b = :v REMOVE a[0]")),
        "Invalid UpdateExpression: Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a, [0]]"
    );
    assert_eq!(
        err(r.update("ADD a :v")),
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: STRING"
    );
    assert_eq!(
        err(r.update("DELETE a :n")),
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE, operand type: NUMBER"
    );
    assert!(r
        .update("SET a = :v, b.c = :v REMOVE d[0], d[1] ADD e :n DELETE f :s")
        .is_ok());
}

#[test]
fn projection_rules() {
    let r = Req::new();
    assert_eq!(
        err(r.projection("a.b, a")),
        "Invalid ProjectionExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a]"
    );
    assert_eq!(
        err(r.projection("a[0], a.b")),
        "Invalid ProjectionExpression: Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, [0]], path two: [a, b]"
    );
    assert!(r.projection("a[0], a[1], b.c, b.d").is_ok());
}

#[test]
fn path_depth_is_limited() {
    let r = Req::new();
    let ok_path = vec!["a"; 32].join(".");
    assert!(r.projection(&ok_path).is_ok());
    let deep = vec!["a"; 33].join(".");
    assert_eq!(
        err(r.projection(&deep)),
        "Invalid ProjectionExpression: The document path has too many nesting levels; nesting levels: 33"
    );
}

#[test]
fn oversized_expressions_are_rejected() {
    let r = Req::new();
    let long = vec!["abc"; 1100].join(",");
    assert!(err(r.projection(&long))
        .starts_with("Invalid ProjectionExpression: Expression size has exceeded"));
}

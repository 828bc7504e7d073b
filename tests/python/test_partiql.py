"""PartiQL through boto3: ExecuteStatement, BatchExecuteStatement and
ExecuteTransaction, with DynamoDB's errors."""

import pytest
from botocore.exceptions import ClientError


def run(client, statement, params=None, **kw):
    args = dict(Statement=statement, **kw)
    if params:
        args["Parameters"] = params
    return client.execute_statement(**args)


def error(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def test_insert_select_update_delete(make_table, client, is_dynamodb_local):
    t = make_table("pq_crud").name
    run(client, f"INSERT INTO \"{t}\" VALUE {{'pk': ?, 'n': 1, 'tags': <<'a', 'b'>>, 'm': {{'k': [1, 'two']}}}}",
        [{"S": "a"}])
    items = run(client, f"SELECT * FROM \"{t}\" WHERE pk = 'a'")["Items"]
    assert items == [{"pk": {"S": "a"}, "n": {"N": "1"}, "tags": {"SS": ["a", "b"]},
                      "m": {"M": {"k": {"L": [{"N": "1"}, {"S": "two"}]}}}}]
    assert run(client, f"SELECT m.k[1] FROM \"{t}\" WHERE pk = 'a'")["Items"] == [{"k[1]": {"S": "two"}}]

    out = run(client, f"UPDATE \"{t}\" SET n = n + 41 REMOVE tags WHERE pk = 'a' RETURNING ALL NEW *")
    assert out["Items"] == [{"pk": {"S": "a"}, "n": {"N": "42"}, "m": {"M": {"k": {"L": [{"N": "1"}, {"S": "two"}]}}}}]
    out = run(client, f"UPDATE \"{t}\" SET n = 7 WHERE pk = 'a' RETURNING MODIFIED OLD *")
    assert out["Items"] == [{"n": {"N": "42"}}]

    with pytest.raises(ClientError) as e:
        run(client, f"INSERT INTO \"{t}\" VALUE {{'pk': 'a'}}")
    # DynamoDB Local names this error "DuplicateItem"; DynamoDB "DuplicateItemException".
    code, message = error(e)
    assert message == "Duplicate primary key exists in table"
    assert code == ("DuplicateItem" if is_dynamodb_local else "DuplicateItemException")
    with pytest.raises(ClientError) as e:
        run(client, f"UPDATE \"{t}\" SET n = 1 WHERE pk = 'nobody'")
    assert error(e) == ("ConditionalCheckFailedException", "The conditional request failed")

    out = run(client, f"DELETE FROM \"{t}\" WHERE pk = 'a' RETURNING ALL OLD *")
    assert out["Items"][0]["n"] == {"N": "7"}
    assert run(client, f"SELECT * FROM \"{t}\" WHERE pk = 'a'")["Items"] == []


def test_query_order_filters_and_next_token(make_table, client, is_dynamodb_local):
    t = make_table("pq_page", range_key="sk", range_type="N").name
    for i in range(12):
        run(client, f"INSERT INTO \"{t}\" VALUE {{'pk': 'p', 'sk': ?, 'odd': ?}}",
            [{"N": str(i)}, {"BOOL": i % 2 == 1}])
    rows = run(client, f"SELECT sk FROM \"{t}\" WHERE pk = 'p' AND odd = true AND sk >= 5")["Items"]
    assert [r["sk"]["N"] for r in rows] == ["5", "7", "9", "11"]

    # DynamoDB Local fails ORDER BY with Limit (InternalFailure).
    order = "" if is_dynamodb_local else " ORDER BY sk DESC"
    stmt = f"SELECT sk FROM \"{t}\" WHERE pk = 'p'{order}"
    seen, token = [], None
    for _ in range(20):
        kw = {"Limit": 5}
        if token:
            kw["NextToken"] = token
        out = run(client, stmt, **kw)
        seen += [int(r["sk"]["N"]) for r in out["Items"]]
        token = out.get("NextToken")
        if not token:
            break
    assert seen == (list(range(12)) if is_dynamodb_local else list(range(11, -1, -1)))

    with pytest.raises(ClientError) as e:
        run(client, stmt, NextToken="garbage")
    assert error(e) == ("ValidationException", "Invalid NextToken")


def test_statement_errors(make_table, client, is_dynamodb_local):
    t = make_table("pq_err", range_key="sk").name
    cases = [] if is_dynamodb_local else [
        # DynamoDB Local echoes the statement instead of the parser's detail.
        (f"SELECTT * FROMM \"{t}\"", None,
         "Statement wasn't well formed, can't be processed: Expected data manipulation"),
    ]
    cases += [
        (f"SELECT * FROM \"{t}\" WHERE pk = ?", None,
         "Number of parameters in request and statement don't match."),
        (f"UPDATE \"{t}\" SET a = 1 WHERE pk = 'x'", None,
         "Where clause does not contain a mandatory equality on all key attributes"),
        (f"SELECT * FROM \"{t}\" WHERE pk = 'x' AND sk = 1", None,
         "Key attribute's data type should match its data type in table's schema: Key sk"),
        (f"DELETE FROM \"{t}\" WHERE pk = 'x' AND sk = 'y' RETURNING MODIFIED OLD *", None,
         "Invalid returning clause: RETURNING MODIFIED OLD *. Only RETURNING ALL OLD * is allowed in DELETE statements."),
    ]
    for statement, params, message in cases:
        with pytest.raises(ClientError) as e:
            run(client, statement, params)
        assert error(e) == ("ValidationException", message), statement
    with pytest.raises(ClientError) as e:
        run(client, "SELECT * FROM \"pq_missing_table\" WHERE pk = 'x'")
    assert error(e)[0] == "ResourceNotFoundException"


def test_batch_execute_statement(make_table, client):
    t = make_table("pq_batch").name
    out = client.batch_execute_statement(Statements=[
        {"Statement": f"INSERT INTO \"{t}\" VALUE {{'pk': 'a', 'n': 1}}"},
        {"Statement": f"INSERT INTO \"{t}\" VALUE {{'pk': ?, 'n': 2}}", "Parameters": [{"S": "b"}]},
    ])
    assert [r.get("Error") for r in out["Responses"]] == [None, None]
    out = client.batch_execute_statement(Statements=[
        {"Statement": f"SELECT n FROM \"{t}\" WHERE pk = 'a'"},
        {"Statement": f"SELECT n FROM \"{t}\" WHERE pk = 'zzz'"},
        {"Statement": "SELECT * FROM \"pq_missing_table\" WHERE pk = 'x'"},
    ])
    r = out["Responses"]
    assert r[0] == {"TableName": t, "Item": {"n": {"N": "1"}}}
    assert r[1] == {"TableName": t}
    assert r[2]["Error"]["Code"] == "ResourceNotFound"
    out = client.batch_execute_statement(Statements=[
        {"Statement": f"INSERT INTO \"{t}\" VALUE {{'pk': 'a'}}"},
    ])
    assert out["Responses"][0]["Error"] == {"Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"}
    with pytest.raises(ClientError) as e:
        client.batch_execute_statement(Statements=[
            {"Statement": f"SELECT * FROM \"{t}\" WHERE pk = 'a'"},
            {"Statement": f"DELETE FROM \"{t}\" WHERE pk = 'a'"},
        ])
    assert error(e) == ("ValidationException", "Read and write requests together in the same batch is not supported.")


def test_execute_transaction(make_table, client):
    t = make_table("pq_tx").name
    run(client, f"INSERT INTO \"{t}\" VALUE {{'pk': 'from', 'balance': 50}}")
    run(client, f"INSERT INTO \"{t}\" VALUE {{'pk': 'to', 'balance': 0}}")
    transfer = [
        {"Statement": f"UPDATE \"{t}\" SET balance = balance - ? WHERE pk = 'from' AND balance >= ?",
         "Parameters": [{"N": "40"}, {"N": "40"}]},
        {"Statement": f"UPDATE \"{t}\" SET balance = balance + ? WHERE pk = 'to'", "Parameters": [{"N": "40"}]},
    ]
    client.execute_transaction(TransactStatements=transfer)
    with pytest.raises(ClientError) as e:
        client.execute_transaction(TransactStatements=transfer)
    assert e.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in e.value.response["CancellationReasons"]] == ["ConditionalCheckFailed", "None"]
    out = client.execute_transaction(TransactStatements=[
        {"Statement": f"SELECT balance FROM \"{t}\" WHERE pk = 'from'"},
        {"Statement": f"SELECT balance FROM \"{t}\" WHERE pk = 'to'"},
    ])
    assert [r["Item"]["balance"]["N"] for r in out["Responses"]] == ["10", "40"]

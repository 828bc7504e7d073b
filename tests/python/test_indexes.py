"""Secondary indexes through boto3: the main flows (an LSI read strongly
consistently, a sparse GSI read eventually, a GSI added with UpdateTable
and backfilled, the read rules on a GSI, paginators on an index)."""

import time

import pytest
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from conftest import unique_name, wait_active

INDEX_DEADLINE_S = 30


def eventually(what, probe):
    """Calls probe() until it returns a non-None value, at most INDEX_DEADLINE_S."""
    deadline = time.monotonic() + INDEX_DEADLINE_S
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last is not False:
            return last
        time.sleep(0.02)
    pytest.fail(f"{what}: not reached within {INDEX_DEADLINE_S}s")


def error_of(call):
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response["Error"]
    return err["Code"], err["Message"]


@pytest.fixture
def indexed_table(client, resource):
    """pk/sk table with LSI by_l (KEYS_ONLY) and GSIs by_g (g, r; INCLUDE [a]) and by_all (g; ALL)."""
    name = unique_name("idx")
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "l", "g", "r")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        LocalSecondaryIndexes=[{
            "IndexName": "by_l",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "l", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }],
        GlobalSecondaryIndexes=[
            {"IndexName": "by_g",
             "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "r", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a"]}},
            {"IndexName": "by_all",
             "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}},
        ],
    )
    wait_active(client, name)
    yield resource.Table(name)
    client.delete_table(TableName=name)


def test_lsi_is_strongly_consistent_and_fetches_unprojected(indexed_table):
    t = indexed_table
    for i in range(5):
        t.put_item(Item={"pk": "p", "sk": f"s{i}", "l": f"l{4 - i}", "a": f"a{i}"})
        got = t.query(IndexName="by_l", KeyConditionExpression=Key("pk").eq("p"), ConsistentRead=True)
        assert got["Count"] == i + 1
    got = t.query(IndexName="by_l", KeyConditionExpression=Key("pk").eq("p"), ConsistentRead=True)
    assert got["Items"] == [{"pk": "p", "sk": f"s{i}", "l": f"l{4 - i}"} for i in reversed(range(5))]
    full = t.query(IndexName="by_l", KeyConditionExpression=Key("pk").eq("p"), Select="ALL_ATTRIBUTES")
    assert [i["a"] for i in full["Items"]] == ["a4", "a3", "a2", "a1", "a0"]


def test_sparse_gsi_projection_and_moves(indexed_table):
    t = indexed_table
    t.put_item(Item={"pk": "1", "sk": "x", "g": "G", "r": "2", "a": "A1", "b": "B1"})
    t.put_item(Item={"pk": "2", "sk": "x", "g": "G", "r": "1", "a": "A2", "b": "B2"})
    t.put_item(Item={"pk": "3", "sk": "x", "g": "G", "a": "A3"})  # no r: only in by_all
    t.put_item(Item={"pk": "4", "sk": "x", "a": "A4"})  # no g: in no GSI

    def by_g():
        items = t.query(IndexName="by_g", KeyConditionExpression=Key("g").eq("G"))["Items"]
        return items if len(items) == 2 else None

    assert eventually("by_g holds 2", by_g) == [
        {"pk": "2", "sk": "x", "g": "G", "r": "1", "a": "A2"},
        {"pk": "1", "sk": "x", "g": "G", "r": "2", "a": "A1"},
    ]
    eventually("by_all holds 3",
               lambda: len(t.query(IndexName="by_all", KeyConditionExpression=Key("g").eq("G"))["Items"]) == 3)
    t.update_item(Key={"pk": "1", "sk": "x"}, UpdateExpression="SET g = :h",
                  ExpressionAttributeValues={":h": "H"})
    t.delete_item(Key={"pk": "2", "sk": "x"})
    eventually("by_g reflects the move and the delete",
               lambda: t.query(IndexName="by_g", KeyConditionExpression=Key("g").eq("G"))["Items"] == []
               and [i["pk"] for i in t.query(IndexName="by_g", KeyConditionExpression=Key("g").eq("H"))["Items"]]
               == ["1"])


def test_gsi_read_rules(indexed_table, skip_on_dynamodb_local):
    t = indexed_table
    q = {"IndexName": "by_g", "KeyConditionExpression": Key("g").eq("G")}
    assert error_of(lambda: t.query(Select="ALL_ATTRIBUTES", **q)) == (
        "ValidationException",
        "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for "
        "global secondary index by_g because its projection type is not ALL")
    assert error_of(lambda: t.query(ProjectionExpression="b", **q)) == (
        "ValidationException",
        "One or more parameter values were invalid: Global secondary index by_g does not project [b]")
    assert error_of(lambda: t.put_item(Item={"pk": "p", "sk": "s", "r": ""})) == (
        "ValidationException",
        "One or more parameter values are not valid. A value specified for a secondary index key is not "
        "supported. The AttributeValue for a key attribute cannot contain an empty string value. "
        "IndexName: by_g, IndexKey: r")
    skip_on_dynamodb_local("its GSI consistent-read and type-mismatch messages differ")
    assert error_of(lambda: t.query(ConsistentRead=True, **q)) == (
        "ValidationException", "Consistent reads are not supported on global secondary indexes")
    assert error_of(lambda: t.put_item(Item={"pk": "p", "sk": "s", "r": 5})) == (
        "ValidationException",
        "One or more parameter values were invalid: Type mismatch for Index Key r Expected: S Actual: N "
        "IndexName: by_g")
    assert "Item" not in t.get_item(Key={"pk": "p", "sk": "s"}, ConsistentRead=True)


def test_index_paginators_return_every_item_once(indexed_table, client):
    t = indexed_table
    with t.batch_writer() as batch:
        for i in range(60):
            batch.put_item(Item={"pk": f"p{i % 3}", "sk": f"s{i:02}", "g": "same", "r": f"r{i % 4}", "l": "l"})
    eventually("by_g holds 60",
               lambda: t.query(IndexName="by_g", KeyConditionExpression=Key("g").eq("same"),
                               Select="COUNT")["Count"] == 60)
    pages = list(client.get_paginator("query").paginate(
        TableName=t.name, IndexName="by_g", KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": "same"}}, PaginationConfig={"PageSize": 7}))
    assert len(pages) == 9
    for page in pages[:-1]:
        assert set(page["LastEvaluatedKey"]) == {"pk", "sk", "g", "r"}
    seen = [(i["pk"]["S"], i["sk"]["S"]) for page in pages for i in page["Items"]]
    assert sorted(seen) == sorted((f"p{i % 3}", f"s{i:02}") for i in range(60))
    segments = [
        [(i["pk"]["S"], i["sk"]["S"])
         for page in client.get_paginator("scan").paginate(
             TableName=t.name, IndexName="by_l", Segment=s, TotalSegments=3,
             PaginationConfig={"PageSize": 5})
         for i in page["Items"]]
        for s in range(3)
    ]
    assert sorted(k for seg in segments for k in seg) == sorted(seen)


def test_update_table_adds_and_removes_a_gsi(make_table, client):
    table = make_table("gsi_add")
    with table.batch_writer() as batch:
        for i in range(200):
            item = {"pk": f"k{i:03}", "v": str(i)}
            if i % 2:
                item["c"] = f"c{i % 5}"
            batch.put_item(Item=item)
    resp = client.update_table(
        TableName=table.name,
        AttributeDefinitions=[{"AttributeName": "c", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[{"Create": {
            "IndexName": "by_c", "KeySchema": [{"AttributeName": "c", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}}])
    assert resp["TableDescription"]["GlobalSecondaryIndexes"][0]["IndexStatus"] == "CREATING"

    def active():
        gsis = client.describe_table(TableName=table.name)["Table"]["GlobalSecondaryIndexes"]
        return gsis[0]["IndexStatus"] == "ACTIVE"

    eventually("by_c ACTIVE", active)
    counts = [table.query(IndexName="by_c", KeyConditionExpression=Key("c").eq(f"c{j}"))["Count"]
              for j in range(5)]
    assert counts == [20] * 5
    client.update_table(TableName=table.name,
                        GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_c"}}])
    eventually("by_c removed",
               lambda: "GlobalSecondaryIndexes" not in client.describe_table(TableName=table.name)["Table"])
    assert error_of(lambda: table.query(IndexName="by_c", KeyConditionExpression=Key("c").eq("c1"))) == (
        "ValidationException", "The table does not have the specified index: by_c")

"""BatchWriteItem and BatchGetItem through boto3."""

import pytest
from botocore.exceptions import ClientError


def test_batch_writer_and_batch_get_across_tables(make_table, resource):
    a = make_table("batch_a")
    b = make_table("batch_b", range_key="sk")
    with a.batch_writer() as batch:
        for i in range(70):
            batch.put_item(Item={"pk": f"a{i}", "v": i})
    with b.batch_writer() as batch:
        for i in range(30):
            batch.put_item(Item={"pk": f"b{i}", "sk": "x", "v": i})

    request = {
        a.name: {"Keys": [{"pk": f"a{i}"} for i in range(70)], "ConsistentRead": True},
        b.name: {"Keys": [{"pk": f"b{i}", "sk": "x"} for i in range(30)]},
    }
    got = {a.name: [], b.name: []}
    for _ in range(20):
        resp = resource.batch_get_item(RequestItems=request)
        for name, items in resp["Responses"].items():
            got[name].extend(items)
        request = resp.get("UnprocessedKeys") or {}
        if not request:
            break
    assert sorted(int(i["v"]) for i in got[a.name]) == list(range(70))
    assert sorted(int(i["v"]) for i in got[b.name]) == list(range(30))

    with a.batch_writer() as batch:
        for i in range(10):
            batch.delete_item(Key={"pk": f"a{i}"})
    assert a.scan(Select="COUNT", ConsistentRead=True)["Count"] == 60


def test_batch_limits(make_table, client):
    table = make_table("batch_lim")
    with pytest.raises(ClientError) as e:
        client.batch_write_item(RequestItems={table.name: [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}} for i in range(26)]})
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        client.batch_get_item(RequestItems={table.name: {"Keys": [{"pk": {"S": "d"}}, {"pk": {"S": "d"}}]}})
    assert e.value.response["Error"] == {"Code": "ValidationException",
                                         "Message": "Provided list of item keys contains duplicates"}
    assert table.scan(Select="COUNT", ConsistentRead=True)["Count"] == 0

"""Item operations through boto3's resource and client APIs."""

from decimal import Decimal

import pytest
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError


def error_of(excinfo):
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


def test_put_get_update_delete(make_table):
    table = make_table("items", range_key="sk")
    key = {"pk": "user#1", "sk": "profile"}
    table.put_item(Item={**key, "name": "Ada", "visits": 1, "tags": {"a", "b"},
                         "blob": b"\x00\x01", "nested": {"list": [1, "two", None, True]}})
    got = table.get_item(Key=key, ConsistentRead=True)["Item"]
    assert got == {**key, "name": "Ada", "visits": Decimal(1), "tags": {"a", "b"},
                   "blob": got["blob"], "nested": {"list": [Decimal(1), "two", None, True]}}
    assert bytes(got["blob"].value) == b"\x00\x01"

    resp = table.update_item(
        Key=key,
        UpdateExpression="SET #n = :n ADD visits :one, tags :c",
        ExpressionAttributeNames={"#n": "name"},
        ExpressionAttributeValues={":n": "Grace", ":one": 1, ":c": {"c"}},
        ReturnValues="UPDATED_NEW",
    )
    assert resp["Attributes"] == {"name": "Grace", "visits": Decimal(2), "tags": {"a", "b", "c"}}
    resp = table.update_item(Key=key, UpdateExpression="REMOVE nested.#l[1]",
                             ExpressionAttributeNames={"#l": "list"}, ReturnValues="ALL_NEW")
    assert resp["Attributes"]["nested"] == {"list": [Decimal(1), None, True]}

    old = table.delete_item(Key=key, ReturnValues="ALL_OLD")["Attributes"]
    assert old["name"] == "Grace"
    assert "Item" not in table.get_item(Key=key, ConsistentRead=True)


def test_conditions_and_condition_check_failure(make_table):
    table = make_table("cond")
    table.put_item(Item={"pk": "k", "state": "open", "n": 5},
                   ConditionExpression=Attr("pk").not_exists())
    with pytest.raises(ClientError) as e:
        table.put_item(Item={"pk": "k"}, ConditionExpression=Attr("pk").not_exists(),
                       ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert error_of(e) == ("ConditionalCheckFailedException", "The conditional request failed")
    assert e.value.response["Item"] == {"pk": {"S": "k"}, "state": {"S": "open"}, "n": {"N": "5"}}

    table.update_item(Key={"pk": "k"}, UpdateExpression="SET n = n + :d",
                      ConditionExpression=Attr("state").eq("open") & Attr("n").between(1, 10),
                      ExpressionAttributeValues={":d": 10})
    assert table.get_item(Key={"pk": "k"}, ConsistentRead=True)["Item"]["n"] == 15
    with pytest.raises(ClientError) as e:
        table.delete_item(Key={"pk": "k"}, ConditionExpression=Attr("n").lt(10))
    assert error_of(e) == ("ConditionalCheckFailedException", "The conditional request failed")
    assert "Item" in table.get_item(Key={"pk": "k"}, ConsistentRead=True)


def test_exact_numbers_round_trip(make_table):
    table = make_table("num")
    big = Decimal("12345678901234567890123456789012345678")
    tiny = Decimal("-0.12345678901234567890123456789012345678")
    table.put_item(Item={"pk": "n", "big": big, "tiny": tiny, "set": {Decimal("1.5"), Decimal("2")}})
    got = table.get_item(Key={"pk": "n"}, ConsistentRead=True)["Item"]
    assert (got["big"], got["tiny"], got["set"]) == (big, tiny, {Decimal("1.5"), Decimal("2")})
    resp = table.update_item(Key={"pk": "n"}, UpdateExpression="SET tiny = tiny + :x",
                             ExpressionAttributeValues={":x": Decimal("0.02345678901234567890123456789012345678")},
                             ReturnValues="UPDATED_NEW")
    assert resp["Attributes"]["tiny"] == Decimal("-0.1")


def test_validation_errors(make_table, client):
    table = make_table("val")
    with pytest.raises(ClientError) as e:
        table.put_item(Item={"pk": "k", "data": "x" * (400 * 1024)})
    assert error_of(e) == ("ValidationException", "Item size has exceeded the maximum allowed size")
    with pytest.raises(ClientError) as e:
        table.update_item(Key={"pk": "k"}, UpdateExpression="SET status = :s",
                          ExpressionAttributeValues={":s": "x"})
    assert error_of(e) == ("ValidationException",
                           "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: status")
    with pytest.raises(ClientError) as e:
        table.put_item(Item={"other": "no key"})
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_item(TableName="py_no_such_table_x", Key={"pk": {"S": "k"}})
    assert table.scan(ConsistentRead=True)["Count"] == 0

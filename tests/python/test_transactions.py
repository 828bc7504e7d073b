"""Transactions through boto3: the seed's Accounts transfer."""

from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from conftest import unique_name, wait_active


@pytest.fixture
def accounts(client):
    name = unique_name("Accounts")
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "AccountId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "AccountId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    wait_active(client, name)
    yield name
    client.delete_table(TableName=name)


def transfer(client, table, source, target, amount):
    """Moves ``amount`` from ``source`` to ``target`` if ``source`` can cover it."""
    amt = {"N": str(amount)}
    return client.transact_write_items(
        TransactItems=[
            {"Update": {
                "TableName": table,
                "Key": {"AccountId": {"S": source}},
                "UpdateExpression": "SET Balance = Balance - :amt",
                "ConditionExpression": "Balance >= :amt",
                "ExpressionAttributeValues": {":amt": amt},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }},
            {"Update": {
                "TableName": table,
                "Key": {"AccountId": {"S": target}},
                "UpdateExpression": "SET Balance = Balance + :amt",
                "ExpressionAttributeValues": {":amt": amt},
            }},
        ],
        ReturnConsumedCapacity="TOTAL",
    )


def balances(resource, table):
    t = resource.Table(table)
    return tuple(t.get_item(Key={"AccountId": a}, ConsistentRead=True)["Item"]["Balance"]
                 for a in ("alice", "bob"))


def test_seed_transfer(client, resource, accounts):
    table = resource.Table(accounts)
    table.put_item(Item={"AccountId": "alice", "Balance": 100})
    table.put_item(Item={"AccountId": "bob", "Balance": 0})

    out = transfer(client, accounts, "alice", "bob", 70)
    # Transactions cost twice the plain writes: 2 items x 2 units.
    assert out["ConsumedCapacity"] == [
        {"TableName": accounts, "CapacityUnits": 4.0, "WriteCapacityUnits": 4.0}]
    assert balances(resource, accounts) == (Decimal(30), Decimal(70))

    with pytest.raises(ClientError) as excinfo:
        transfer(client, accounts, "alice", "bob", 70)
    err = excinfo.value.response
    assert err["Error"]["Code"] == "TransactionCanceledException"
    assert err["Error"]["Message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[ConditionalCheckFailed, None]")
    assert err["CancellationReasons"] == [
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed",
         "Item": {"AccountId": {"S": "alice"}, "Balance": {"N": "30"}}},
        {"Code": "None"},
    ]
    assert balances(resource, accounts) == (Decimal(30), Decimal(70))

    got = client.transact_get_items(TransactItems=[
        {"Get": {"TableName": accounts, "Key": {"AccountId": {"S": a}},
                 "ProjectionExpression": "Balance"}}
        for a in ("alice", "bob")
    ])
    assert [r["Item"] for r in got["Responses"]] == [
        {"Balance": {"N": "30"}}, {"Balance": {"N": "70"}}]

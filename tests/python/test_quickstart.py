"""The README's quick start: the seed program, inline and as examples/orders.py."""

import os
import subprocess
import sys
from decimal import Decimal

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from conftest import REPO, wait_active

ORDER = {
    "pk": "CUSTOMER#1042",
    "sk": "ORDER#2026-04-21#A-482",
    "total": Decimal("129.95"),
    "status": "SHIPPED",
}


@pytest.fixture
def orders_table(client):
    """The seed program's table, "Orders" (created first, as the README says), removed afterwards."""
    try:
        client.create_table(
            TableName="Orders",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except client.exceptions.ResourceInUseException:
        pass
    wait_active(client, "Orders")
    yield "Orders"
    client.delete_table(TableName="Orders")


def test_seed_program_runs_unchanged(endpoint, orders_table):
    URL = endpoint
    # --- the seed program, unchanged ---
    table = boto3.resource("dynamodb", region_name="us-west-2", endpoint_url=URL).Table("Orders")
    table.put_item(Item={"pk": "CUSTOMER#1042", "sk": "ORDER#2026-04-21#A-482", "total": Decimal("129.95"), "status": "SHIPPED"})
    resp = table.query(KeyConditionExpression=Key("pk").eq("CUSTOMER#1042") & Key("sk").begins_with("ORDER#2026-04"))
    # --- end ---
    assert resp["Items"] == [ORDER]
    assert resp["Count"] == 1
    assert resp["ScannedCount"] == 1
    assert "LastEvaluatedKey" not in resp


def test_examples_orders_py_prints_the_order(endpoint, client):
    env = dict(os.environ)
    try:
        out = subprocess.run(
            [sys.executable, str(REPO / "examples" / "orders.py"), endpoint],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        printed = out.stdout.strip()
        # boto3 prints Decimal values as Decimal('...'); attribute order may vary.
        assert eval(printed, {"Decimal": Decimal}) == [ORDER], printed
    finally:
        try:
            client.delete_table(TableName="Orders")
        except client.exceptions.ResourceNotFoundException:
            pass

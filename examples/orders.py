"""Partita quick start: store an order and query it back with boto3.

Start the server first (`cargo run --release -p partita -- serve`), then run
`python3 examples/orders.py` (or pass another endpoint URL as the argument).
The part below "the seed example" is exactly the README's quick start.
"""

import os
import sys
from decimal import Decimal

import boto3
from boto3.dynamodb.conditions import Key

URL = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8000"

# Partita accepts any credentials until access control is configured.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "partita")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "partita")

# Create the Orders table once (it survives restarts of the server).
client = boto3.client("dynamodb", region_name="us-west-2", endpoint_url=URL)
try:
    client.create_table(
        TableName="Orders",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
except client.exceptions.ResourceInUseException:
    pass
client.get_waiter("table_exists").wait(TableName="Orders", WaiterConfig={"Delay": 1})

# The seed example.
table = boto3.resource("dynamodb", region_name="us-west-2", endpoint_url=URL).Table("Orders")
table.put_item(Item={"pk": "CUSTOMER#1042", "sk": "ORDER#2026-04-21#A-482", "total": Decimal("129.95"), "status": "SHIPPED"})
resp = table.query(KeyConditionExpression=Key("pk").eq("CUSTOMER#1042") & Key("sk").begins_with("ORDER#2026-04"))
print(resp["Items"])

"""Control-plane operations through boto3."""

import pytest
from botocore.exceptions import ClientError

from conftest import unique_name, wait_active


def test_table_lifecycle(client):
    name = unique_name("life")
    desc = client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 2, "WriteCapacityUnits": 3},
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        DeletionProtectionEnabled=True,
    )["TableDescription"]
    assert desc["TableName"] == name
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    table = client.describe_table(TableName=name)["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 2
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 3
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["DeletionProtectionEnabled"] is True

    names = [n for page in client.get_paginator("list_tables").paginate(PaginationConfig={"PageSize": 2})
             for n in page["TableNames"]]
    assert name in names
    assert names == sorted(names)

    with pytest.raises(ClientError) as e:
        client.delete_table(TableName=name)
    assert e.value.response["Error"]["Code"] == "ValidationException"

    client.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")
    wait_active(client, name)
    client.update_table(TableName=name, DeletionProtectionEnabled=False)
    wait_active(client, name)
    table = client.describe_table(TableName=name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionProtectionEnabled"] is False

    client.update_time_to_live(TableName=name,
                               TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
    assert ttl["AttributeName"] == "expires"

    client.delete_table(TableName=name)
    client.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_table(TableName=name)


def test_tags(client, make_table, skip_on_dynamodb_local):
    skip_on_dynamodb_local("tagging is not supported by DynamoDB Local")
    table = make_table("tags")
    arn = client.describe_table(TableName=table.name)["Table"]["TableArn"]
    assert arn.startswith("arn:aws:dynamodb:") and arn.endswith(f":table/{table.name}")
    client.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "db"}])
    client.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert client.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "env", "Value": "dev"}]


def test_create_existing_table_fails(make_table, client):
    table = make_table("dup")
    with pytest.raises(client.exceptions.ResourceInUseException):
        client.create_table(TableName=table.name,
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            BillingMode="PAY_PER_REQUEST")


def test_describe_limits(client):
    limits = client.describe_limits()
    assert 0 < limits["TableMaxReadCapacityUnits"] <= limits["AccountMaxReadCapacityUnits"]
    assert 0 < limits["TableMaxWriteCapacityUnits"] <= limits["AccountMaxWriteCapacityUnits"]

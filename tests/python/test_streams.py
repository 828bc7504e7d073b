"""DynamoDB Streams through boto3, with the README's consumer helper
(examples/tail_stream.py)."""

import os
import subprocess
import sys

import boto3
import pytest

from conftest import REGION, REPO, unique_name, wait_active

sys.path.insert(0, str(REPO / "examples"))
from tail_stream import tail_stream  # noqa: E402


@pytest.fixture
def streams(endpoint):
    return boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=endpoint)


@pytest.fixture
def stream_table(client):
    name = unique_name("stream")
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    wait_active(client, name)
    yield name
    client.delete_table(TableName=name)


def test_the_readme_helper_tails_every_change_in_order(client, streams, stream_table):
    client.put_item(TableName=stream_table, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    client.update_item(TableName=stream_table, Key={"pk": {"S": "a"}},
                       UpdateExpression="SET n = :v", ExpressionAttributeValues={":v": {"N": "2"}})
    client.put_item(TableName=stream_table, Item={"pk": {"S": "b"}})
    client.delete_item(TableName=stream_table, Key={"pk": {"S": "a"}})
    arn = client.describe_table(TableName=stream_table)["Table"]["LatestStreamArn"]

    records = list(tail_stream(streams, arn, stop_when_idle=True))

    seen = [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records]
    assert [s for s in seen if s[1] == "a"] == [("INSERT", "a"), ("MODIFY", "a"), ("REMOVE", "a")]
    assert ("INSERT", "b") in seen and len(seen) == 4
    modify = next(r for r in records if r["eventName"] == "MODIFY")
    assert modify["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert modify["dynamodb"]["NewImage"]["n"] == {"N": "2"}
    assert modify["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert modify["eventSource"] == "aws:dynamodb"
    # boto3 parses ApproximateCreationDateTime as a datetime.
    assert modify["dynamodb"]["ApproximateCreationDateTime"].year >= 2024


def test_the_example_script_prints_the_changes(client, endpoint, stream_table):
    client.put_item(TableName=stream_table, Item={"pk": {"S": "hello"}, "v": {"S": "world"}})
    env = dict(os.environ, TAIL_STOP_WHEN_IDLE="1", AWS_DEFAULT_REGION=REGION)
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "tail_stream.py"), stream_table, endpoint],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert "INSERT" in out and "hello" in out and "world" in out


def test_latest_sees_only_new_changes(client, streams, stream_table):
    client.put_item(TableName=stream_table, Item={"pk": {"S": "old"}})
    arn = client.describe_table(TableName=stream_table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    latest = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                        ShardIteratorType="LATEST")["ShardIterator"]
    client.put_item(TableName=stream_table, Item={"pk": {"S": "new"}})
    page = streams.get_records(ShardIterator=latest)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"]] == ["new"]


def test_errors_have_streams_types(client, streams, stream_table):
    arn = client.describe_table(TableName=stream_table)["Table"]["LatestStreamArn"]
    with pytest.raises(streams.exceptions.ResourceNotFoundException):
        streams.describe_stream(StreamArn=arn + "x")
    with pytest.raises(client.exceptions.ClientError) as err:
        streams.get_records(ShardIterator="garbage")
    assert err.value.response["Error"]["Code"] == "ValidationException"

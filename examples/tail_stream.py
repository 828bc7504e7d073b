"""Tail a table's DynamoDB stream with boto3 and print each change.

    python examples/tail_stream.py TABLE [URL]

URL defaults to http://localhost:8000 (`partita serve`). The helper
`tail_stream` follows every shard of the table's latest stream — parents
before children, as DynamoDB Streams consumers must — and yields the records
as the DynamoDB Streams API returns them. Stop it with Ctrl-C.
"""

import os
import sys
import time

import boto3


def tail_stream(streams, stream_arn, iterator_type="TRIM_HORIZON", idle_sleep=1.0,
                stop_when_idle=False):
    """Yields every record of the stream, shard by shard, in order per shard.

    ``streams`` is a ``boto3.client("dynamodbstreams")``. Each shard is read
    from ``iterator_type`` (TRIM_HORIZON or LATEST) with GetShardIterator,
    then with GetRecords until its NextShardIterator ends (a closed shard) —
    an open shard is polled, sleeping ``idle_sleep`` seconds between empty
    pages. With ``stop_when_idle`` the generator returns once every shard
    has no new records (handy for tests and batch jobs).
    """
    iterators = {}   # shard id -> next iterator (None once the shard is done)
    finished = set()
    while True:
        description = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
        shards = description["Shards"]
        known = {s["ShardId"] for s in shards}
        for shard in shards:
            shard_id = shard["ShardId"]
            parent = shard.get("ParentShardId")
            # Read a child only after its parent is drained (or trimmed away).
            if shard_id in iterators or (parent in known and parent not in finished):
                continue
            iterators[shard_id] = streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType=iterator_type,
            )["ShardIterator"]
        idle = True
        for shard_id, iterator in list(iterators.items()):
            if iterator is None:
                continue
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                idle = False
                yield record
            iterators[shard_id] = page.get("NextShardIterator")
            if iterators[shard_id] is None:
                finished.add(shard_id)
        if idle:
            if stop_when_idle:
                return
            time.sleep(idle_sleep)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    table = sys.argv[1]
    url = sys.argv[2] if len(sys.argv) > 2 else "http://localhost:8000"
    # boto3 needs some credentials; Partita accepts any unless configured.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    dynamodb = boto3.client("dynamodb", region_name=region, endpoint_url=url)
    streams = boto3.client("dynamodbstreams", region_name=region, endpoint_url=url)
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    stop = os.environ.get("TAIL_STOP_WHEN_IDLE") == "1"
    for record in tail_stream(streams, arn, stop_when_idle=stop):
        change = record["dynamodb"]
        print(record["eventName"], change["Keys"], change.get("NewImage"), flush=True)


if __name__ == "__main__":
    main()

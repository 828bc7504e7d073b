"""Query and Scan through boto3, with its paginators."""

from boto3.dynamodb.conditions import Attr, Key


def test_query_order_filters_and_pagination(make_table, client):
    table = make_table("query", range_key="sk", range_type="N")
    with table.batch_writer() as batch:
        for i in range(40):
            batch.put_item(Item={"pk": "p", "sk": i, "odd": i % 2 == 1})
        batch.put_item(Item={"pk": "other", "sk": 1})

    resp = table.query(KeyConditionExpression=Key("pk").eq("p") & Key("sk").between(5, 9),
                       ScanIndexForward=False)
    assert [int(i["sk"]) for i in resp["Items"]] == [9, 8, 7, 6, 5]

    resp = table.query(KeyConditionExpression=Key("pk").eq("p"), FilterExpression=Attr("odd").eq(True),
                       Limit=10)
    assert (resp["Count"], resp["ScannedCount"]) == (5, 10)
    assert resp["LastEvaluatedKey"] == {"pk": "p", "sk": 9}

    pages = client.get_paginator("query").paginate(
        TableName=table.name, KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "p"}}, PaginationConfig={"PageSize": 7})
    seen = [int(item["sk"]["N"]) for page in pages for item in page["Items"]]
    assert seen == list(range(40))

    count = table.query(KeyConditionExpression=Key("pk").eq("p"), Select="COUNT")
    assert (count["Count"], "Items" in count) == (40, False)


def test_scan_pagination_and_parallel_segments(make_table, client):
    table = make_table("scan")
    keys = {f"k{i}" for i in range(120)}
    with table.batch_writer() as batch:
        for k in keys:
            batch.put_item(Item={"pk": k, "n": int(k[1:])})

    pages = client.get_paginator("scan").paginate(
        TableName=table.name, FilterExpression="n >= :ten",
        ExpressionAttributeValues={":ten": {"N": "10"}}, PaginationConfig={"PageSize": 25})
    found = [item["pk"]["S"] for page in pages for item in page["Items"]]
    assert sorted(found) == sorted(k for k in keys if int(k[1:]) >= 10)

    segments = []
    for segment in range(4):
        pages = client.get_paginator("scan").paginate(
            TableName=table.name, Segment=segment, TotalSegments=4,
            PaginationConfig={"PageSize": 16})
        segments.append({item["pk"]["S"] for page in pages for item in page["Items"]})
    assert sum(len(s) for s in segments) == len(keys)
    assert set().union(*segments) == keys

"""SigV4 and IAM policies with boto3: ``partita serve --auth FILE``.

Starts its own server with an auth file (admin, alice, bob); alice and bob
carry the tenant policy ``ForAllValues:StringEquals dynamodb:LeadingKeys
["${aws:username}"]`` and may reach only items whose partition key is their
user name. Every attempt at the other's items is AccessDenied and changes
nothing (checked as admin). Skipped when DYNAMODB_ENDPOINT is set.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import REGION, _partita_bin

ACCOUNT = "123456789012"

AUTH_FILE = """
users:
  - name: admin
    accessKeyId: AKIAADMIN0000000001
    secretAccessKey: admin-secret
    policies: [admin]
  - name: alice
    accessKeyId: AKIAALICE0000000001
    secretAccessKey: alice-secret
    policies: [tenant-items]
  - name: bob
    accessKeyId: AKIABOB00000000001
    secretAccessKey: bob-secret
    policies: [tenant-items]
policies:
  admin:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: "dynamodb:*"
        Resource: "*"
  tenant-items:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                 "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"]
        Resource: ["arn:aws:dynamodb:*:*:table/Tenants", "arn:aws:dynamodb:*:*:table/Tenants/index/*"]
        Condition:
          ForAllValues:StringEquals:
            dynamodb:LeadingKeys: ["${aws:username}"]
"""


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def auth_endpoint():
    if os.environ.get("DYNAMODB_ENDPOINT"):
        pytest.skip("needs its own server started with --auth")
    binary = _partita_bin()
    if not binary.exists():
        pytest.fail(f"partita binary not found at {binary}")
    work = tempfile.mkdtemp(prefix="partita-pytest-auth-")
    auth = pathlib.Path(work) / "auth.yaml"
    auth.write_text(AUTH_FILE)
    port = _free_port()
    log = open(pathlib.Path(work) / "server.log", "w+b")
    proc = subprocess.Popen(
        [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(pathlib.Path(work) / "data"), "--region", REGION, "--auth", str(auth)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            pass
        assert proc.poll() is None, "partita exited"
        assert time.monotonic() < deadline, "partita did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.seek(0)
        text = log.read().decode(errors="replace")
        log.close()
        shutil.rmtree(work, ignore_errors=True)
        for secret in ("admin-secret", "alice-secret", "bob-secret"):
            assert secret not in text, f"{secret} appears in the server log"


def _client(endpoint, key, secret, region=REGION):
    return boto3.client(
        "dynamodb", region_name=region, endpoint_url=endpoint,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def admin(auth_endpoint):
    return _client(auth_endpoint, "AKIAADMIN0000000001", "admin-secret")


@pytest.fixture(scope="module")
def alice(auth_endpoint):
    return _client(auth_endpoint, "AKIAALICE0000000001", "alice-secret")


@pytest.fixture(scope="module")
def tenants(admin):
    admin.create_table(
        TableName="Tenants",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    deadline = time.monotonic() + 30
    while admin.describe_table(TableName="Tenants")["Table"]["TableStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for pk in ("alice", "bob"):
        for sk in ("1", "2"):
            admin.put_item(TableName="Tenants",
                           Item={"pk": {"S": pk}, "sk": {"S": sk}, "v": {"N": "1"}})
    return "Tenants"


def _key(pk, sk):
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _denied(action, user="alice"):
    return (f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: "
            f"dynamodb:{action} on resource: arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Tenants "
            f"because no identity-based policy allows the dynamodb:{action} action")


def _snapshot(admin):
    items = admin.scan(TableName="Tenants", ConsistentRead=True)["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def test_alice_works_on_her_own_items(alice, tenants):
    assert alice.get_item(TableName=tenants, Key=_key("alice", "1"))["Item"]["v"] == {"N": "1"}
    alice.put_item(TableName=tenants, Item={**_key("alice", "3"), "v": {"N": "3"}})
    alice.update_item(TableName=tenants, Key=_key("alice", "3"), UpdateExpression="SET v = :v",
                      ExpressionAttributeValues={":v": {"N": "4"}})
    out = alice.query(TableName=tenants, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "alice"}})
    assert out["Count"] == 3
    got = alice.batch_get_item(RequestItems={tenants: {"Keys": [_key("alice", "1"), _key("alice", "3")]}})
    assert len(got["Responses"][tenants]) == 2
    alice.batch_write_item(RequestItems={tenants: [{"DeleteRequest": {"Key": _key("alice", "3")}}]})
    alice.delete_item(TableName=tenants, Key=_key("alice", "3"))


@pytest.mark.parametrize("action,call", [
    ("GetItem", lambda c, t: c.get_item(TableName=t, Key=_key("bob", "1"))),
    ("PutItem", lambda c, t: c.put_item(TableName=t, Item={**_key("bob", "9"), "v": {"N": "9"}})),
    ("UpdateItem", lambda c, t: c.update_item(TableName=t, Key=_key("bob", "1"), UpdateExpression="SET v = :v",
                                              ExpressionAttributeValues={":v": {"N": "666"}})),
    ("DeleteItem", lambda c, t: c.delete_item(TableName=t, Key=_key("bob", "1"))),
    ("Query", lambda c, t: c.query(TableName=t, KeyConditionExpression="pk = :p",
                                   ExpressionAttributeValues={":p": {"S": "bob"}})),
    ("Scan", lambda c, t: c.scan(TableName=t)),
    ("BatchGetItem", lambda c, t: c.batch_get_item(RequestItems={t: {"Keys": [_key("alice", "1"), _key("bob", "1")]}})),
    ("BatchWriteItem", lambda c, t: c.batch_write_item(RequestItems={t: [
        {"PutRequest": {"Item": _key("alice", "9")}}, {"DeleteRequest": {"Key": _key("bob", "2")}}]})),
    ("DeleteTable", lambda c, t: c.delete_table(TableName=t)),
])
def test_bobs_items_are_out_of_reach(alice, admin, tenants, action, call):
    before = _snapshot(admin)
    with pytest.raises(ClientError) as e:
        call(alice, tenants)
    err = e.value.response["Error"]
    assert err["Code"] == "AccessDeniedException"
    assert err["Message"] == _denied(action)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _snapshot(admin) == before


def test_signature_errors(auth_endpoint, tenants):
    cases = [
        (_client(auth_endpoint, "AKIAUNKNOWN00000001", "x"), "UnrecognizedClientException",
         "The security token included in the request is invalid."),
        (_client(auth_endpoint, "AKIAALICE0000000001", "wrong"), "InvalidSignatureException",
         "The request signature we calculated does not match the signature you provided. Check your AWS "
         "Secret Access Key and signing method. Consult the service documentation for details."),
        (_client(auth_endpoint, "AKIAADMIN0000000001", "admin-secret", region="eu-central-1"),
         "InvalidSignatureException", "Credential should be scoped to a valid region, not 'eu-central-1'. "),
    ]
    for client, code, message in cases:
        with pytest.raises(ClientError) as e:
            client.get_item(TableName=tenants, Key=_key("alice", "1"))
        assert e.value.response["Error"]["Code"] == code
        assert e.value.response["Error"]["Message"] == message
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

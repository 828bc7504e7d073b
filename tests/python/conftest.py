"""pytest harness for Partita's boto3 tests.

Which server the tests talk to:
- default: the real ``partita`` binary (env ``PARTITA_BIN``, else
  ``<repo>/target/debug/partita``), started once per session as
  ``partita serve --host 127.0.0.1 --port <P> --data-dir <D>`` on a free
  loopback port with its own temporary data directory, stopped at the end;
- env ``DYNAMODB_ENDPOINT``: an already-running endpoint (used to validate
  the tests against DynamoDB Local).

Every test uses unique table names and deletes what it creates.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import boto3
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
REGION = "us-west-2"
START_TIMEOUT_S = 30

# boto3 needs some credentials; Partita (like DynamoDB Local) accepts any.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDPARTITATEST")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "partita-test-secret")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _partita_bin():
    if os.environ.get("PARTITA_BIN"):
        return pathlib.Path(os.environ["PARTITA_BIN"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "partita"


class PartitaServer:
    """A ``partita serve`` process on a free loopback port."""

    def __init__(self, binary):
        self.data_dir = tempfile.mkdtemp(prefix="partita-pytest-")
        self.port = _free_port()
        self.log = open(os.path.join(self.data_dir + ".log"), "w+b")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", self.data_dir],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"partita exited with {self.proc.returncode}:\n{self._log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"partita did not accept connections in {START_TIMEOUT_S}s:\n{self._log_text()}")
            time.sleep(0.02)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def endpoint():
    """The endpoint URL of the server under test."""
    external = os.environ.get("DYNAMODB_ENDPOINT")
    if external:
        yield external
        return
    binary = _partita_bin()
    if not binary.exists():
        pytest.fail(f"partita binary not found at {binary}: run `cargo build -p partita`, "
                    "set PARTITA_BIN, or set DYNAMODB_ENDPOINT")
    server = PartitaServer(binary)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def client(endpoint):
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)


@pytest.fixture(scope="session")
def resource(endpoint):
    return boto3.resource("dynamodb", region_name=REGION, endpoint_url=endpoint)


@pytest.fixture(scope="session")
def is_dynamodb_local(client):
    """True when the endpoint is AWS's DynamoDB Local (it answers with a Jetty Server header)."""
    forced = os.environ.get("DYNAMODB_LOCAL")
    if forced in ("1", "true"):
        return True
    if forced in ("0", "false"):
        return False
    if not os.environ.get("DYNAMODB_ENDPOINT"):
        return False
    headers = client.list_tables(Limit=1)["ResponseMetadata"]["HTTPHeaders"]
    return "jetty" in headers.get("server", "").lower()


@pytest.fixture
def skip_on_dynamodb_local(is_dynamodb_local):
    """Call with a reason to skip a test that DynamoDB Local is known to fail."""
    def skip(reason):
        if is_dynamodb_local:
            pytest.skip(f"DynamoDB Local differs from DynamoDB: {reason}")
    return skip


def unique_name(prefix):
    return f"py_{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_table(client, resource):
    """Creates on-demand tables (hash key ``pk``, optional range key) and deletes them afterwards."""
    created = []

    def make(prefix="t", range_key=None, range_type="S", hash_type="S"):
        name = unique_name(prefix)
        attrs = [{"AttributeName": "pk", "AttributeType": hash_type}]
        schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
        if range_key:
            attrs.append({"AttributeName": range_key, "AttributeType": range_type})
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        client.create_table(TableName=name, AttributeDefinitions=attrs, KeySchema=schema,
                            BillingMode="PAY_PER_REQUEST")
        wait_active(client, name)
        created.append(name)
        return resource.Table(name)

    yield make
    for name in created:
        try:
            client.delete_table(TableName=name)
        except client.exceptions.ResourceNotFoundException:
            pass


def wait_active(client, name, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while client.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, f"{name} not ACTIVE in {timeout_s}s"
        time.sleep(0.05)

"""Starts a real `rekey` binary on 127.0.0.1 with a fresh SQLite data directory.

The binary comes from $REKEY_BIN (scripts/test.sh builds it). Every fixture talks to it only
over HTTP or through the CLI, as an operator or an outside client would.
"""

import json
import os
import socket
import subprocess
import threading
import time

import pytest
import requests

REKEY_BIN = os.environ.get("REKEY_BIN", "target/debug/rekey")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir, port, log_path):
        self.data_dir = str(data_dir)
        self.spool_root = str(data_dir) + "-spool"
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc = None

    def cli(self, *args, env_extra=None):
        env = dict(os.environ, REKEY_URL=self.base, REKEY_DATA_DIR=self.data_dir)
        env.update(env_extra or {})
        out = subprocess.run(
            [REKEY_BIN, *args], capture_output=True, text=True, env=env, timeout=60
        )
        if out.returncode != 0:
            raise AssertionError(f"rekey {args[0]} failed: {out.stderr}")
        return out.stdout

    def start(self, **env_extra):
        log = open(self.log_path, "ab")
        env = dict(
            os.environ,
            REKEY_DATA_DIR=self.data_dir,
            REKEY_LISTEN=f"127.0.0.1:{self.port}",
            REKEY_FILE_DESTINATION_ROOT=self.spool_root,
            # moto and local receivers are plain http on loopback.
            REKEY_ALLOW_INSECURE_DESTINATIONS="true",
            REKEY_ALLOWED_DESTINATION_NETWORKS='["127.0.0.0/8", "::1/128"]',
            # Stop at once (the drain after SIGTERM has its own test).
            REKEY_SHUTDOWN_DRAIN_SECONDS="0",
            RUST_LOG="trace",
            **AWS_TEST_ENV,
        )
        env.update(env_extra)
        self.proc = subprocess.Popen([REKEY_BIN, "serve"], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError("rekey serve exited early; see " + str(self.log_path))
            time.sleep(0.1)
        raise AssertionError("rekey serve did not become ready")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def access_token(self):
        res = requests.post(
            self.base + "/csp/gateway/am/api/auth/api-tokens/authorize",
            data={"api_token": self.api_token},
            timeout=5,
        )
        assert res.status_code == 200, res.text
        return res.json()["access_token"]

    def api(self, method, path, **kw):
        return requests.request(
            method, self.base + path, headers={"Authorization": "Bearer " + self.access_token()}, timeout=10, **kw
        )

    def create_app(self, *scopes):
        args = ["apps", "create", "--name", "t", "--output", "json"]
        for s in scopes:
            args += ["--scope", s]
        return json.loads(self.cli(*args, env_extra={"REKEY_API_TOKEN": self.api_token}))


# AWS settings for every process a test starts: fake credentials for moto, and never the
# instance metadata service (it is not on loopback).
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}

# Short delivery retries for tests of the binary.
FAST_DELIVERY_ENV = {
    "REKEY_DELIVERY_BACKOFF_BASE_MS": "100",
    "REKEY_DELIVERY_BACKOFF_MAX_SECONDS": "1",
    "REKEY_DISPATCHER_POLL_MS": "100",
    "REKEY_DELIVERY_TIMEOUT_SECONDS": "3",
}


def start_moto(port, log_path):
    venv_bin = os.path.dirname(os.path.abspath(__import__("sys").executable))
    proc = subprocess.Popen(
        [os.path.join(venv_bin, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("moto_server did not start")


@pytest.fixture()
def moto(tmp_path):
    """A moto server of its own: (endpoint, a boto3 SQS client on it, its port)."""
    import boto3

    port = free_port()
    proc = start_moto(port, tmp_path / "moto.log")
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    yield endpoint, client, port
    proc.kill()


def new_server(tmp_path):
    """A fresh data directory, initialised, not started."""
    srv = Server(tmp_path / "data", free_port(), tmp_path / "server.log")
    init = json.loads(srv.cli("init", "--email", "owner@example.com", "--output", "json"))
    srv.api_token = init["apiToken"]
    srv.org_id = init["orgId"]
    return srv


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = new_server(tmp_path_factory.mktemp("rekey"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture()
def client_app(server):
    """A new app created with the CLI: (client_id, client_secret, app json)."""
    out = server.cli(
        "apps", "create", "--name", "external-client-test",
        "--scope", "sellingpartnerapi::client_credential:rotation",
        "--scope", "read",
        "--output", "json",
        env_extra={"REKEY_API_TOKEN": server.api_token},
    )
    created = json.loads(out)
    return created["app"]["clientId"], created["clientSecret"], created


class SlowProxy:
    """A TCP proxy in front of moto that holds each connection `delay` seconds before
    passing it on: a send is then reliably in flight when the test kills the sender."""

    def __init__(self, target_port, delay):
        self.target_port, self.delay = target_port, delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1

            def serve(client=client):
                time.sleep(self.delay)
                upstream = socket.create_connection(("127.0.0.1", self.target_port))

                def pipe(a, b):
                    try:
                        while data := a.recv(65536):
                            b.sendall(data)
                    except OSError:
                        pass
                    finally:
                        for s in (a, b):
                            try:
                                s.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass

                threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
                pipe(upstream, client)

            threading.Thread(target=serve, daemon=True).start()

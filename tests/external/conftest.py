"""Starts a real `rekey` binary on 127.0.0.1 with a fresh SQLite data directory.

The binary comes from $REKEY_BIN (scripts/test.sh builds it). Every fixture talks to it only
over HTTP or through the CLI, as an operator or an outside client would.
"""

import json
import os
import socket
import subprocess
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

    def start(self):
        log = open(self.log_path, "ab")
        env = dict(
            os.environ,
            REKEY_DATA_DIR=self.data_dir,
            REKEY_LISTEN=f"127.0.0.1:{self.port}",
            RUST_LOG="trace",
        )
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


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("rekey")
    srv = Server(root / "data", free_port(), root / "server.log")
    init = json.loads(srv.cli("init", "--email", "owner@example.com", "--output", "json"))
    srv.api_token = init["apiToken"]
    srv.org_id = init["orgId"]
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

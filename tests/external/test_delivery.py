"""Delivery that survives a crash and an outage, checked with boto3 against moto and the
real `rekey` binary."""

import http.server
import json
import os
import socket
import subprocess
import threading
import time
import uuid

import boto3
import requests

from conftest import FAST_DELIVERY_ENV, Server, SlowProxy, free_port, new_server, start_moto

ROTATION_SCOPE = "sellingpartnerapi::client_credential:rotation"
NEW_SECRET = "APPLICATION_OAUTH_CLIENT_NEW_SECRET"


def sqs(endpoint):
    return boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def lwa_token(server, client_id, secret):
    res = requests.post(
        server.base + "/auth/o2/token",
        data={"grant_type": "client_credentials", "scope": ROTATION_SCOPE,
              "client_id": client_id, "client_secret": secret},
        timeout=5,
    )
    return res


def receive(client, queue_url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if res.get("Messages"):
            return res["Messages"]
    return []


def set_sqs_destination(server, app_id, queue_url, endpoint):
    res = server.api(
        "PUT", f"/api/v1/orgs/{server.org_id}/apps/{app_id}/destinations/{NEW_SECRET}",
        json={"kind": "sqs", "queueUrl": queue_url, "region": "us-east-1", "endpointUrl": endpoint},
    )
    assert res.status_code == 200, res.text


def rotate(server, token):
    res = requests.post(
        server.base + "/applications/2023-11-30/clientSecret",
        headers={"x-amz-access-token": token}, timeout=10,
    )
    assert res.status_code == 204, res.text
    assert "x-amzn-RequestId" in res.headers
    return res


def valid_secret_states(server, app_id):
    res = server.api("GET", f"/api/v1/orgs/{server.org_id}/apps/{app_id}/secrets")
    return sorted(s["state"] for s in res.json()["items"] if s["state"] in ("current", "previous"))


def test_a_notification_committed_before_a_kill_9_is_delivered_after_restart(tmp_path):
    moto_port = free_port()
    moto = start_moto(moto_port, tmp_path / "moto.log")
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        client = sqs(endpoint)
        queue_url = client.create_queue(QueueName="rekey-kill9")["QueueUrl"]
        server = new_server(tmp_path)
        # An API-only node commits the rotation but never delivers.
        server.start(REKEY_ROLE="api", **FAST_DELIVERY_ENV)
        created = server.create_app(ROTATION_SCOPE)
        client_id, old = created["app"]["clientId"], created["clientSecret"]
        app_id = created["app"]["id"]
        set_sqs_destination(server, app_id, queue_url, endpoint)
        token = lwa_token(server, client_id, old).json()["access_token"]
        rotate(server, token)
        assert valid_secret_states(server, app_id) == ["current", "previous"]
        server.kill9()
        assert receive(client, queue_url, timeout=2) == []

        server.start(**FAST_DELIVERY_ENV)
        messages = receive(client, queue_url)
        assert len(messages) == 1
        body = json.loads(messages[0]["Body"])
        new = body["payload"]["applicationOAuthClientNewSecret"]["newClientSecret"]
        assert lwa_token(server, client_id, new).status_code == 200
        assert lwa_token(server, client_id, old).status_code == 200
        assert valid_secret_states(server, app_id) == ["current", "previous"]
        server.stop()
    finally:
        moto.kill()


def test_a_queue_that_is_down_during_rotation_gets_the_notification_once_it_is_back(tmp_path):
    moto_port = free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    queue_url = f"{endpoint}/123456789012/rekey-down"
    server = new_server(tmp_path)
    server.start(**FAST_DELIVERY_ENV)
    created = server.create_app(ROTATION_SCOPE)
    client_id, old = created["app"]["clientId"], created["clientSecret"]
    app_id = created["app"]["id"]
    set_sqs_destination(server, app_id, queue_url, endpoint)
    rotate(server, lwa_token(server, client_id, old).json()["access_token"])
    assert lwa_token(server, client_id, old).status_code == 200
    # The queue server is down: the delivery fails and waits for a retry.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = server.api("GET", f"/api/v1/orgs/{server.org_id}/deliveries").json()["items"]
        if items and items[0]["lastError"]:
            break
        time.sleep(0.2)
    assert items[0]["state"] == "pending" and "SQS" in items[0]["lastError"]
    assert valid_secret_states(server, app_id) == ["current", "previous"]

    moto = start_moto(moto_port, tmp_path / "moto.log")
    try:
        client = sqs(endpoint)
        assert client.create_queue(QueueName="rekey-down")["QueueUrl"] == queue_url
        messages = receive(client, queue_url)
        assert len(messages) >= 1
        bodies = [json.loads(m["Body"]) for m in messages]
        ids = {b["notificationMetadata"]["notificationId"] for b in bodies}
        assert len(ids) == 1, "duplicates, if any, carry the same notificationId"
        new = bodies[0]["payload"]["applicationOAuthClientNewSecret"]["newClientSecret"]
        assert lwa_token(server, client_id, new).status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            items = server.api("GET", f"/api/v1/orgs/{server.org_id}/deliveries").json()["items"]
            if items[0]["state"] == "delivered":
                break
            time.sleep(0.1)
        assert items[0]["state"] == "delivered"
    finally:
        moto.kill()
        server.stop()


def test_no_delivered_secret_reaches_the_log_at_trace_level(tmp_path):
    """The rotation path at RUST_LOG=trace (the fixtures' level): secrets delivered to SQS on
    moto and to a webhook that fails twice before it accepts never appear in the server's
    log, nor does the first secret of either app."""
    moto_port = free_port()
    moto = start_moto(moto_port, tmp_path / "moto.log")
    attempts = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["content-length"]))
            attempts.append(json.loads(body))
            self.send_response(500 if len(attempts) <= 2 else 204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    srv = new_server(tmp_path)
    srv.start(**FAST_DELIVERY_ENV)
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        client = sqs(endpoint)
        queue_url = client.create_queue(QueueName="leak-check")["QueueUrl"]
        to_sqs = srv.create_app(ROTATION_SCOPE)
        set_sqs_destination(srv, to_sqs["app"]["id"], queue_url, endpoint)
        to_hook = srv.create_app(ROTATION_SCOPE)
        res = srv.api(
            "PUT", f"/api/v1/orgs/{srv.org_id}/apps/{to_hook['app']['id']}/destinations/{NEW_SECRET}",
            json={"kind": "webhook", "url": f"http://127.0.0.1:{hook.server_address[1]}/hook"},
        )
        assert res.status_code == 200, res.text
        secrets = [to_sqs["clientSecret"], to_hook["clientSecret"]]
        for app in (to_sqs, to_hook):
            token = lwa_token(srv, app["app"]["clientId"], app["clientSecret"]).json()["access_token"]
            rotate(srv, token)
        messages = receive(client, queue_url)
        assert len(messages) == 1
        secrets.append(json.loads(messages[0]["Body"])["payload"]
                       ["applicationOAuthClientNewSecret"]["newClientSecret"])
        deadline = time.monotonic() + 20
        while len(attempts) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(attempts) == 3, "two failures, then delivered"
        secrets.append(attempts[-1]["payload"]["applicationOAuthClientNewSecret"]["newClientSecret"])
    finally:
        srv.stop()
        hook.shutdown()
        moto.kill()
    log = open(srv.log_path, encoding="utf-8", errors="replace").read()
    assert "TRACE" in log, "the log is at trace level"
    for secret in secrets:
        assert secret not in log, "a secret is in the log"


def test_a_node_killed_while_a_send_is_in_flight_delivers_the_same_notification_after_restart(tmp_path):
    """kill -9 of the dispatching node while its SQS send is held in flight (a proxy delays
    it), on PostgreSQL when it is configured: after the restart and the lease's end, the same
    notificationId arrives (at least once) and the delivery ends delivered."""
    moto_port = free_port()
    moto = start_moto(moto_port, tmp_path / "moto.log")
    proxy = SlowProxy(moto_port, delay=3)
    env = dict(FAST_DELIVERY_ENV, REKEY_DELIVERY_LEASE_SECONDS="5",
               REKEY_DELIVERY_TIMEOUT_SECONDS="4")
    pg = os.environ.get("REKEY_TEST_POSTGRES_URL")
    schema = None
    if pg:
        schema = f"rekey_ext_{int(time.time())}_{uuid.uuid4().hex[:8]}"
        subprocess.run(["psql", pg, "-qc", f"CREATE SCHEMA {schema}"], check=True)
        sep = "&" if "?" in pg else "?"
        env.update(REKEY_DATABASE_URL=f"{pg}{sep}options[search_path]={schema}",
                   REKEY_PUBLIC_URL="http://rekey.kill9.test")
    try:
        client = sqs(f"http://127.0.0.1:{moto_port}")
        queue_url = client.create_queue(QueueName="in-flight")["QueueUrl"]
        if pg:
            server = Server(tmp_path / "data", free_port(), tmp_path / "server.log")
            init = json.loads(server.cli("init", "--email", "o@example.com", "--output", "json",
                                         env_extra=env))
            server.api_token, server.org_id = init["apiToken"], init["orgId"]
        else:
            server = new_server(tmp_path)
        server.start(**env)
        created = server.create_app(ROTATION_SCOPE)
        app_id, client_id = created["app"]["id"], created["app"]["clientId"]
        set_sqs_destination(server, app_id, queue_url, f"http://127.0.0.1:{proxy.port}")
        token = lwa_token(server, client_id, created["clientSecret"]).json()["access_token"]
        rotate(server, token)
        deadline = time.monotonic() + 10
        while proxy.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.connections >= 1, "the send started"
        server.kill9()

        server.start(**env)
        messages = receive(client, queue_url, timeout=40)
        assert messages, "delivered after the restart"
        ids = {json.loads(m["Body"])["notificationMetadata"]["notificationId"] for m in messages}
        assert len(ids) == 1, "the same notification, however many times"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            items = server.api("GET", f"/api/v1/orgs/{server.org_id}/deliveries?appId={app_id}").json()["items"]
            if items and all(d["state"] == "delivered" for d in items):
                break
            time.sleep(0.2)
        assert [d["state"] for d in items] == ["delivered"], items
        assert items[0]["notificationId"] in ids
        server.stop()
    finally:
        moto.kill()
        if schema:
            subprocess.run(["psql", pg, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"])

"""Delivery that survives a crash and an outage, checked with boto3 against moto and the
real `rekey` binary."""

import json
import time

import boto3
import requests

from conftest import FAST_DELIVERY_ENV, free_port, new_server, start_moto

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

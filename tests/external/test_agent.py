"""Rotation that runs itself, end to end with real processes: a server whose rotation policy
rotates an app on schedule, moto's SQS, `rekey agent` writing the secret to a file and
running a hook, a service that reads the file for every token request, and the policy
retiring the old secret once the service has stopped using it. Then the agent killed with
SIGKILL mid-way, and the agent fed by webhooks."""

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
import types

import boto3
import requests

from conftest import AWS_TEST_ENV, FAST_DELIVERY_ENV, REKEY_BIN, SlowProxy, free_port, new_server

NEW_SECRET = "APPLICATION_OAUTH_CLIENT_NEW_SECRET"

# The policy's clock in seconds: sweeps every second, last uses flushed every second (so the
# shortest quiet period is 3 s).
FAST_POLICY_ENV = dict(FAST_DELIVERY_ENV, REKEY_SWEEP_INTERVAL_SECONDS="1",
                       REKEY_LAST_USE_FLUSH_SECONDS="1")


def wait_for(what, predicate, timeout=30, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


class Agent:
    """`rekey agent` as a process, with its log and a hook that records each call."""

    def __init__(self, tmp_path, client_id, token_url, source_args, hook=None):
        self.tmp = tmp_path
        self.secret_file = tmp_path / "secret"
        self.hook_log = tmp_path / "hook-calls"
        self.log_path = tmp_path / "agent.log"
        self.port = free_port()
        self.args = [REKEY_BIN, "agent", "--client-id", client_id, "--token-url", token_url,
                     *source_args, "--write-file", str(self.secret_file),
                     "--on-change", hook or f"cat {self.secret_file} >> {self.hook_log}",
                     "--listen", f"127.0.0.1:{self.port}"]
        self.proc = None

    def start(self):
        env = dict(os.environ, RUST_LOG="rekey=debug,rekey_agent=debug", **AWS_TEST_ENV)
        self.proc = subprocess.Popen(self.args, stdout=open(self.log_path, "ab"),
                                     stderr=subprocess.STDOUT, env=env)
        wait_for("the agent's health endpoint", lambda: self.health() is not None)

    def health(self):
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).json()
        except requests.ConnectionError:
            assert self.proc.poll() is None, open(self.log_path).read()
            return None

    def metrics(self):
        return requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=1).text

    def hook_calls(self):
        try:
            return open(self.hook_log).read().split()
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def log(self):
        return open(self.log_path).read()


def token_status(server, client_id, secret):
    return requests.post(server.base + "/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
    }, timeout=5).status_code


def create_app(server, **settings):
    res = server.api("POST", f"/api/v1/orgs/{server.org_id}/apps",
                     json={"name": "svc", "scopes": ["read"], **settings})
    assert res.status_code == 201, res.text
    return res.json()


def first_secret_expiring_in(server, seconds, policy):
    """An app whose first secret expires in `seconds` and whose later secrets live an hour
    (so that the test sees one rotation)."""
    # Tokens live a second, so the quiet period (stretched to a token lifetime plus three
    # last-use flushes) stays a few seconds.
    created = create_app(server, secretLifetimeSeconds=seconds, accessTokenTtlSeconds=1,
                         rotationPolicy=policy)
    res = server.api("PATCH", f"/api/v1/orgs/{server.org_id}/apps/{created['app']['id']}",
                     json={"secretLifetimeSeconds": 3600})
    assert res.status_code == 200, res.text
    return created


def enroll_sqs(server, app_id, queue_url, endpoint):
    res = server.api("PUT", f"/api/v1/orgs/{server.org_id}/apps/{app_id}/destinations/{NEW_SECRET}",
                     json={"kind": "sqs", "queueUrl": queue_url, "region": "us-east-1",
                           "endpointUrl": endpoint})
    assert res.status_code == 200, res.text


def audit(server, action):
    res = server.api("GET", f"/api/v1/orgs/{server.org_id}/audit-events?action={action}")
    return res.json()["items"]


class Service(threading.Thread):
    """A service that reads its secret from the agent's file for every token request, as a
    process reloading its credentials would; it records every secret it used and every
    failed request."""

    def __init__(self, server, client_id, secret_file):
        super().__init__(daemon=True)
        self.server, self.client_id, self.secret_file = server, client_id, secret_file
        self.used, self.failures, self.running = [], [], True

    def run(self):
        while self.running:
            secret = open(self.secret_file).read().strip()
            status = token_status(self.server, self.client_id, secret)
            if secret not in self.used:
                self.used.append(secret)
            if status != 200:
                self.failures.append(status)
            time.sleep(0.2)


@contextlib.contextmanager
def policy_run(tmp_path, moto, lifetime, before):
    """A server that sweeps every second (metrics on); an app whose first secret expires in
    `lifetime` s, with a policy that rotates `before` s earlier and retires after 3 s of
    quiet; its new secrets on a moto queue; and an agent applying them from the queue to a
    file that holds the first secret. Stops the server after the block."""
    endpoint, sqs, _ = moto
    queue_url = sqs.create_queue(QueueName="agent-policy")["QueueUrl"]
    server = new_server(tmp_path)
    metrics_port = free_port()
    server.start(**FAST_POLICY_ENV, REKEY_METRICS_LISTEN=f"127.0.0.1:{metrics_port}")
    try:
        created = first_secret_expiring_in(server, lifetime, {
            "rotateBeforeExpirySeconds": before, "retireWhenUnusedSeconds": 3})
        client_id, old = created["app"]["clientId"], created["clientSecret"]
        enroll_sqs(server, created["app"]["id"], queue_url, endpoint)
        agent = Agent(tmp_path, client_id, server.base + "/oauth2/token",
                      ["--queue-url", queue_url, "--sqs-endpoint-url", endpoint])
        agent.secret_file.write_text(old + "\n")
        agent.start()
        yield types.SimpleNamespace(server=server, client_id=client_id, old=old, agent=agent,
                                    server_metrics=lambda: requests.get(
                                        f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text)
    finally:
        server.stop()


def test_a_policy_rotates_the_agent_applies_and_the_old_secret_retires_without_a_failed_request(tmp_path, moto):
    # The first secret lives a minute; the policy rotates 55 s before expiry (5 s after
    # creation) and retires the old secret after 3 s of quiet.
    with policy_run(tmp_path, moto, 60, 55) as run:
        server, client_id, old, agent = run.server, run.client_id, run.old, run.agent
        service = Service(server, client_id, agent.secret_file)
        service.start()

        new = wait_for("the agent to apply the new secret",
                       lambda: (s := agent.secret_file.read_text().strip()) != old and s, timeout=40)
        assert oct(os.stat(agent.secret_file).st_mode & 0o777) == "0o600"
        wait_for("the hook", agent.hook_calls)
        # Retired by the policy once the service has used the new secret and not the old one
        # for 3 s: well before the old secret's own expiry a minute after it was made. (Watched
        # through the API: trying the old secret would be a use, and keep it alive.)
        wait_for("the old secret's retirement", lambda: audit(server, "secret.rotation_finished"),
                 timeout=40)
        service.running = False
        service.join()
        assert token_status(server, client_id, old) != 200

        assert service.failures == [], service.failures
        assert service.used == [old, new]
        assert agent.hook_calls() == [new], "the hook ran once, after the file held the secret"
        assert token_status(server, client_id, new) == 200
        rotated = [e for e in audit(server, "secret.rotated") if e["actor"] == "policy"]
        finished = [e for e in audit(server, "secret.rotation_finished") if e["actor"] == "policy"]
        assert len(rotated) == 1 and len(finished) == 1, (rotated, finished)
        health = agent.health()
        assert health["status"] == "ok" and health["lastAppliedHint"] == new[-4:], health
        assert re.search(r"^rekey_agent_secrets_applied_total 1$", agent.metrics(), re.M)
        server_metrics = run.server_metrics()
        assert 'rekey_rotation_policy_actions_total{action="rotated"} 1' in server_metrics
        assert 'rekey_rotation_policy_actions_total{action="retired"} 1' in server_metrics
        # No secret in any log.
        agent.stop()
        for log in (agent.log(), open(server.log_path).read()):
            assert new not in log and old not in log


def test_an_old_secret_still_in_use_is_never_retired_and_the_wait_is_reported(tmp_path, moto):
    with policy_run(tmp_path, moto, 120, 118) as run:
        server, client_id, old, agent = run.server, run.client_id, run.old, run.agent
        new = wait_for("the new secret",
                       lambda: (s := agent.secret_file.read_text().strip()) != old and s, timeout=30)
        assert token_status(server, client_id, new) == 200
        # A forgotten instance keeps the old secret; for 10 s (over two quiet periods) it works.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert token_status(server, client_id, old) == 200
            time.sleep(0.5)
        shown = server.cli("apps", "show", client_id, env_extra={"REKEY_API_TOKEN": server.api_token})
        assert "next policy step: waiting (previous_still_used)" in shown, shown
        assert 'rekey_rotation_policy_waiting{reason="previous_still_used"} 1' in run.server_metrics()
        assert not [e for e in audit(server, "secret.rotation_finished")]
        agent.stop()


def test_the_agent_killed_between_receiving_and_acknowledging_applies_the_secret_once(tmp_path, moto):
    endpoint, sqs, _ = moto
    queue_url = sqs.create_queue(QueueName="agent-kill")["QueueUrl"]
    server = new_server(tmp_path)
    server.start(**FAST_DELIVERY_ENV)
    agent = None
    try:
        created = create_app(server)
        client_id, old = created["app"]["clientId"], created["clientSecret"]
        enroll_sqs(server, created["app"]["id"], queue_url, endpoint)
        proxy = SlowProxy(server.port, delay=4)
        source = ["--queue-url", queue_url, "--sqs-endpoint-url", endpoint,
                  "--visibility-timeout-seconds", "2"]
        # 1. Killed while it verifies the new secret (the token request held by a proxy).
        agent = Agent(tmp_path, client_id, f"http://127.0.0.1:{proxy.port}/oauth2/token", source)
        agent.secret_file.write_text(old + "\n")
        agent.start()
        rotated = server.api("POST", f"/api/v1/orgs/{server.org_id}/apps/{client_id}/secrets/rotate", json={})
        new = rotated.json()["clientSecret"]
        wait_for("the verification to be in flight", lambda: proxy.connections >= 1)
        agent.proc.kill()
        agent.proc.wait()
        assert agent.secret_file.read_text().strip() == old
        assert agent.hook_calls() == []
        # Restarted: the message comes back after its visibility timeout and is applied.
        agent.args[agent.args.index("--token-url") + 1] = server.base + "/oauth2/token"
        agent.start()
        wait_for("the new secret", lambda: agent.secret_file.read_text().strip() == new)
        wait_for("the hook", agent.hook_calls)
        wait_for("the message to be deleted", lambda: not sqs.receive_message(
            QueueUrl=queue_url, VisibilityTimeout=0, WaitTimeSeconds=1).get("Messages"), timeout=20)
        time.sleep(3)
        assert agent.hook_calls() == [new]
        agent.stop()

        # 2. Killed by its own hook while the hook runs: after the restart the redelivered
        # message is recognised and the hook is not run again.
        hook = f"cat {agent.secret_file} >> {agent.hook_log}; kill -9 $PPID"
        agent2 = Agent(tmp_path, client_id, server.base + "/oauth2/token", source, hook=hook)
        agent2.start()
        rotated = server.api("POST", f"/api/v1/orgs/{server.org_id}/apps/{client_id}/secrets/finish", json={})
        assert rotated.status_code == 200
        rotated = server.api("POST", f"/api/v1/orgs/{server.org_id}/apps/{client_id}/secrets/rotate", json={})
        newer = rotated.json()["clientSecret"]
        wait_for("the agent to die in its hook", lambda: agent2.proc.poll() is not None)
        assert agent2.hook_calls() == [new, newer]
        agent2.start()
        wait_for("the message to be deleted", lambda: not sqs.receive_message(
            QueueUrl=queue_url, VisibilityTimeout=0, WaitTimeSeconds=1).get("Messages"), timeout=20)
        time.sleep(3)
        assert agent2.proc.poll() is None, "the hook (which kills the agent) did not run again"
        assert agent2.hook_calls() == [new, newer]
        assert agent2.secret_file.read_text().strip() == newer
        assert "not running it again" in agent2.log()
        agent2.stop()
    finally:
        if agent:
            agent.stop()
        server.stop()


def test_the_agent_applies_webhook_deliveries_and_refuses_unsigned_ones(tmp_path):
    server = new_server(tmp_path)
    server.start(**FAST_DELIVERY_ENV)
    try:
        created = create_app(server)
        client_id, old = created["app"]["clientId"], created["clientSecret"]
        listen_port = free_port()
        res = server.api("PUT", f"/api/v1/orgs/{server.org_id}/apps/{client_id}/destinations/{NEW_SECRET}",
                         json={"kind": "webhook", "url": f"http://127.0.0.1:{listen_port}/rekey"})
        assert res.status_code == 200, res.text
        secret_file = tmp_path / "whsec"
        secret_file.write_text(res.json()["signingSecret"] + "\n")
        agent = Agent(tmp_path, client_id, server.base + "/oauth2/token",
                      ["--webhook-listen", f"127.0.0.1:{listen_port}",
                       "--webhook-secret-file", str(secret_file)])
        agent.secret_file.write_text(old + "\n")
        agent.start()
        # Someone who knows the URL but not the signing secret.
        forged = requests.post(f"http://127.0.0.1:{listen_port}/rekey", data=json.dumps({
            "notificationType": NEW_SECRET,
            "payload": {"applicationOAuthClientNewSecret": {"clientId": client_id, "newClientSecret": "rks_forged"}},
        }), headers={"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
                     "webhook-signature": "v1,AAAA"}, timeout=5)
        assert forged.status_code == 401
        rotated = server.api("POST", f"/api/v1/orgs/{server.org_id}/apps/{client_id}/secrets/rotate", json={})
        new = rotated.json()["clientSecret"]
        wait_for("the new secret", lambda: agent.secret_file.read_text().strip() == new)
        wait_for("the hook", agent.hook_calls)
        deliveries = server.api("GET", f"/api/v1/orgs/{server.org_id}/deliveries?appId={created['app']['id']}").json()
        wait_for("the delivery to end delivered", lambda: server.api(
            "GET", f"/api/v1/orgs/{server.org_id}/deliveries?appId={created['app']['id']}"
        ).json()["items"][0]["state"] == "delivered")
        assert deliveries["items"]
        assert agent.hook_calls() == [new]
        agent.stop()
        assert "rks_forged" not in agent.secret_file.read_text()
    finally:
        server.stop()


def test_a_secrets_manager_destination_holds_the_new_secret_as_awscurrent(tmp_path, moto):
    """The Secrets Manager sink, read back with boto3: after a rotation AWSCURRENT is the new
    secret and AWSPREVIOUS the one before; a redelivery adds no version; a test notification
    writes nothing."""
    endpoint, _, _ = moto
    sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    server = new_server(tmp_path)
    server.start(**FAST_DELIVERY_ENV)
    try:
        created = create_app(server)
        client_id, old = created["app"]["clientId"], created["clientSecret"]
        # The service's secret as the operator stored it at first.
        arn = sm.create_secret(Name="billing/client-secret", SecretString=old)["ARN"]
        base = f"/api/v1/orgs/{server.org_id}/apps/{client_id}/destinations"
        res = server.api("PUT", f"{base}/APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY",
                         json={"kind": "secrets_manager", "secretId": arn, "endpointUrl": endpoint})
        assert res.status_code == 400 and "new secrets" in res.json()["detail"]
        out = server.cli("destinations", "set", client_id, "--secrets-manager-secret-id", arn,
                         "--endpoint-url", endpoint, "--output", "json",
                         env_extra={"REKEY_API_TOKEN": server.api_token})
        assert json.loads(out)["region"] == "us-east-1", "taken from the ARN"

        server.cli("destinations", "test", client_id, env_extra={"REKEY_API_TOKEN": server.api_token})
        versions = lambda: sm.list_secret_version_ids(SecretId=arn)["Versions"]
        wait_for("the test delivery", lambda: server.api(
            "GET", f"/api/v1/orgs/{server.org_id}/deliveries?appId={created['app']['id']}"
        ).json()["items"][0]["state"] == "delivered")
        assert len(versions()) == 1, "a test notification writes nothing"

        rotated = server.api("POST", f"/api/v1/orgs/{server.org_id}/apps/{client_id}/secrets/rotate", json={})
        new = rotated.json()["clientSecret"]
        nid = rotated.json()["notificationId"]
        wait_for("the new version", lambda: sm.get_secret_value(SecretId=arn)["SecretString"] == new)
        previous = sm.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")["SecretString"]
        assert previous == old
        current = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
        assert current[nid] == ["AWSCURRENT"], "the notification id is the version id"
        # A delivered notification keeps no payload: it cannot be sent again (the retry is
        # refused), so nothing adds a version behind the new one.
        deliveries = f"/api/v1/orgs/{server.org_id}/deliveries"
        delivery = server.api("GET", f"{deliveries}?appId={created['app']['id']}").json()["items"][0]
        assert delivery["notificationId"] == nid and delivery["state"] == "delivered"
        before = versions()
        with sqlite3.connect(os.path.join(server.data_dir, "rekey.db")) as db:
            sealed = db.execute("SELECT sealed_payload FROM deliveries WHERE id = ?",
                                (delivery["id"],)).fetchone()[0]
        assert sealed is None, "a delivered payload is not kept"
        # Its payload is gone once delivered: a retry has nothing to send, and says so.
        res = server.api("POST", f"{deliveries}/{delivery['id']}/retry", json={})
        assert res.status_code == 409, res.text
        assert versions() == before
        assert new not in open(server.log_path).read()
    finally:
        server.stop()

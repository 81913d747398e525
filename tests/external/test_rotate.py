"""`rekey rotate`, the SP-API tutorial as one command, against the real binary, a real
SQS-compatible server (moto) and boto3; with each failure injected, the old secret keeps
working and a second run finishes the job."""

import json
import os
import subprocess
import time

import requests

from conftest import AWS_TEST_ENV, FAST_DELIVERY_ENV, REKEY_BIN, free_port, new_server

ROTATION_SCOPE = "sellingpartnerapi::client_credential:rotation"
NEW_SECRET = "APPLICATION_OAUTH_CLIENT_NEW_SECRET"


class Setup:
    def __init__(self, tmp_path, moto, env=None, enrolled=True):
        self.tmp = tmp_path
        self.endpoint, self.sqs, _ = moto
        self.queue_url = self.sqs.create_queue(QueueName="rekey-rotate")["QueueUrl"]
        self.server = new_server(tmp_path)
        self.env = dict(FAST_DELIVERY_ENV, **(env or {}))
        self.server.start(**self.env)
        created = self.server.create_app(ROTATION_SCOPE)
        self.app_id = created["app"]["id"]
        self.client_id = created["app"]["clientId"]
        self.old = created["clientSecret"]
        self.secret_file = tmp_path / "current-secret"
        self.secret_file.write_text(self.old + "\n")
        if enrolled:
            self.enroll()

    def enroll(self):
        res = self.server.api(
            "PUT", f"/api/v1/orgs/{self.server.org_id}/apps/{self.app_id}/destinations/{NEW_SECRET}",
            json={"kind": "sqs", "queueUrl": self.queue_url, "region": "us-east-1", "endpointUrl": self.endpoint},
        )
        assert res.status_code == 200, res.text

    def rotate(self, *extra, queue_url=None, timeout=20):
        args = [
            REKEY_BIN, "rotate",
            "--client-id", self.client_id,
            "--client-secret-file", str(self.secret_file),
            "--token-url", self.server.base + "/auth/o2/token",
            "--api-url", self.server.base,
            "--queue-url", queue_url or self.queue_url,
            "--sqs-endpoint-url", self.endpoint if queue_url is None else queue_url.rsplit("/", 2)[0],
            # No --region: a local queue URL names none, so AWS_REGION (AWS_TEST_ENV) applies.
            "--timeout-seconds", str(timeout),
            *extra,
        ]
        env = dict(os.environ, **AWS_TEST_ENV)
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)

    def token_status(self, secret):
        return requests.post(self.server.base + "/auth/o2/token", data={
            "grant_type": "client_credentials", "client_id": self.client_id, "client_secret": secret,
        }, timeout=5).status_code

    def states(self):
        res = self.server.api("GET", f"/api/v1/orgs/{self.server.org_id}/apps/{self.app_id}/secrets")
        return sorted(s["state"] for s in res.json()["items"])

    def queue_empty(self):
        res = self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=1, VisibilityTimeout=0)
        return not res.get("Messages")

    def assert_finished(self, sink_file):
        new = sink_file.read_text().strip()
        assert new != self.old and self.token_status(new) == 200
        assert self.token_status(self.old) == 200, "the old secret works during the grace period"
        assert self.states() == ["current", "previous"]
        assert oct(sink_file.stat().st_mode & 0o777) == "0o600"
        assert self.queue_empty(), "the message is deleted once the secret is saved"


def test_rotate_end_to_end_writes_the_new_secret_and_deletes_the_message(tmp_path, moto):
    s = Setup(tmp_path, moto)
    out = tmp_path / "new-secret"
    res = s.rotate("--write-file", str(out), "--output", "json")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["rotated"] is True and result["clientId"] == s.client_id
    assert "clientSecret" not in result, "a file sink keeps the secret off stdout"
    s.assert_finished(out)
    s.server.stop()


def test_rotate_can_replace_an_env_file_line_or_print_json(tmp_path, moto):
    s = Setup(tmp_path, moto, env={"REKEY_SPAPI_ROTATION_RATE": "100"})
    env_file = tmp_path / "app.env"
    env_file.write_text("OTHER=1\nLWA_CLIENT_SECRET=" + s.old + "\nMORE=2\n")
    res = s.rotate("--env-file", str(env_file), "--env-key", "LWA_CLIENT_SECRET")
    assert res.returncode == 0, res.stderr
    lines = env_file.read_text().splitlines()
    assert lines[0] == "OTHER=1" and lines[2] == "MORE=2"
    new = lines[1].split("=", 1)[1]
    assert new != s.old and s.token_status(new) == 200
    s.server.stop()


def test_a_dry_run_checks_everything_and_rotates_nothing(tmp_path, moto):
    s = Setup(tmp_path, moto)
    res = s.rotate("--write-file", str(tmp_path / "x"), "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "nothing was rotated" in res.stdout
    assert s.states() == ["current"] and s.queue_empty()
    res = s.rotate("--write-file", str(tmp_path / "no-such-dir" / "x"), "--dry-run")
    assert res.returncode == 8
    s.server.stop()


def test_an_unreachable_queue_stops_before_rotating_and_a_second_run_finishes(tmp_path, moto):
    s = Setup(tmp_path, moto)
    out = tmp_path / "new-secret"
    dead = f"http://127.0.0.1:{free_port()}/123456789012/rekey-rotate"
    res = s.rotate("--write-file", str(out), queue_url=dead)
    assert res.returncode == 7, res.stderr
    assert "cannot read the queue" in res.stderr and "nothing was rotated" in res.stderr
    # The causes in words, not the AWS SDK's debug structures.
    assert "Connection refused" in res.stderr, res.stderr
    for debug_marker in ("DispatchFailure", "ConnectorError", "Some(", "{ "):
        assert debug_marker not in res.stderr, res.stderr
    assert s.states() == ["current"] and s.token_status(s.old) == 200
    res = s.rotate("--write-file", str(out))
    assert res.returncode == 0, res.stderr
    s.assert_finished(out)
    s.server.stop()


def test_a_notification_that_never_comes_times_out_and_a_second_run_picks_it_up(tmp_path, moto):
    # An API-only node: the rotation commits, nobody delivers.
    s = Setup(tmp_path, moto, env={"REKEY_ROLE": "api"})
    out = tmp_path / "new-secret"
    res = s.rotate("--write-file", str(out), timeout=3)
    assert res.returncode == 6, res.stderr
    assert "no APPLICATION_OAUTH_CLIENT_NEW_SECRET notification" in res.stderr
    assert s.token_status(s.old) == 200 and not out.exists()
    s.server.stop()
    s.server.start(**FAST_DELIVERY_ENV)
    res = s.rotate("--write-file", str(out), "--output", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["rotated"] is False, "the earlier rotation is used, not a new one"
    s.assert_finished(out)
    s.server.stop()


def test_an_unwritable_sink_stops_before_rotating_and_a_second_run_finishes(tmp_path, moto):
    s = Setup(tmp_path, moto)
    res = s.rotate("--write-file", str(tmp_path / "missing-dir" / "secret"))
    assert res.returncode == 8, res.stderr
    assert s.states() == ["current"] and s.token_status(s.old) == 200
    out = tmp_path / "new-secret"
    res = s.rotate("--write-file", str(out))
    assert res.returncode == 0, res.stderr
    s.assert_finished(out)
    s.server.stop()


def test_a_throttled_rotation_exits_5_and_a_later_run_finishes(tmp_path, moto):
    s = Setup(tmp_path, moto, env={"REKEY_SPAPI_ROTATION_RATE": "0.5"}, enrolled=False)
    # Use up the bucket with a call that fails (not enrolled yet).
    token = requests.post(s.server.base + "/auth/o2/token", data={
        "grant_type": "client_credentials", "client_id": s.client_id, "client_secret": s.old, "scope": ROTATION_SCOPE,
    }, timeout=5).json()["access_token"]
    assert requests.post(s.server.base + "/applications/2023-11-30/clientSecret",
                         headers={"x-amz-access-token": token}, timeout=5).status_code == 400
    s.enroll()
    out = tmp_path / "new-secret"
    res = s.rotate("--write-file", str(out), timeout=1)
    assert res.returncode == 5, res.stderr
    # 0.5 rotations a second: the next token is 2 s away.
    assert "rate limited" in res.stderr and "next attempt can be made in about 2 s" in res.stderr
    assert s.states() == ["current"] and s.token_status(s.old) == 200
    time.sleep(2.1)
    res = s.rotate("--write-file", str(out))
    assert res.returncode == 0, res.stderr
    s.assert_finished(out)
    s.server.stop()


def test_an_app_that_is_not_enrolled_exits_4_and_runs_once_enrolled(tmp_path, moto):
    s = Setup(tmp_path, moto, env={"REKEY_SPAPI_ROTATION_RATE": "100"}, enrolled=False)
    out = tmp_path / "new-secret"
    res = s.rotate("--write-file", str(out), timeout=1)
    assert res.returncode == 4, res.stderr
    assert "not enrolled" in res.stderr and "rekey destinations set" in res.stderr
    assert s.states() == ["current"] and s.token_status(s.old) == 200
    s.enroll()
    res = s.rotate("--write-file", str(out))
    assert res.returncode == 0, res.stderr
    s.assert_finished(out)
    s.server.stop()


def test_failures_in_json_are_one_object_with_a_stable_error_code(tmp_path, moto):
    s = Setup(tmp_path, moto, env={"REKEY_SPAPI_ROTATION_RATE": "0.1"}, enrolled=False)
    res = s.rotate("--output", "json", timeout=1)
    assert res.returncode == 4, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout
    failure = json.loads(lines[0])
    assert failure["error"] == "not_enrolled" and failure["exitCode"] == 4
    assert "rekey destinations set" in failure["message"]
    # The refused call spent the rate token: the answer says when to come back.
    assert failure["retryAfterSeconds"] == 10
    assert res.stderr == ""
    res = s.rotate("--output", "json", timeout=1)
    failure = json.loads(res.stdout)
    assert res.returncode == 5 and failure["error"] == "rate_limited"
    assert failure["retryAfterSeconds"] == 10
    s.server.stop()


def test_wrong_credentials_exit_3(tmp_path, moto):
    s = Setup(tmp_path, moto)
    s.secret_file.write_text("rks_wrong\n")
    res = s.rotate("--write-file", str(tmp_path / "x"))
    assert res.returncode == 3, res.stderr
    assert s.states() == ["current"]
    s.server.stop()

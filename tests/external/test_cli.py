"""The `rekey` CLI over the management API: destinations, rotation, deliveries."""

import json
import os
import subprocess
import time

from conftest import REKEY_BIN


def cli_json(server, *args):
    return json.loads(server.cli(*args, "--output", "json", env_extra={"REKEY_API_TOKEN": server.api_token}))


def wait_for_files(directory, count, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [f for f in os.listdir(directory) if f.endswith(".json")] if os.path.isdir(directory) else []
        if len(files) >= count:
            return [json.load(open(os.path.join(directory, f))) for f in files]
        time.sleep(0.1)
    raise AssertionError(f"expected {count} notification files in {directory}")


def test_destinations_rotation_and_deliveries_through_the_cli(server):
    created = cli_json(server, "apps", "create", "--name", "cli-flow")
    app_id, client_id = created["app"]["id"], created["app"]["clientId"]
    name = "cli-flow-" + app_id[:8]
    spool = os.path.join(server.spool_root, server.org_id, name)
    dest = cli_json(server, "destinations", "set", app_id, "--directory", name)
    assert dest["kind"] == "file" and dest["notificationType"] == "APPLICATION_OAUTH_CLIENT_NEW_SECRET"
    assert cli_json(server, "destinations", "list", app_id)["items"][0]["directory"] == name

    queued = cli_json(server, "destinations", "test", app_id)
    files = wait_for_files(spool, 1)
    assert files[0]["notificationMetadata"]["notificationId"] == queued["notificationId"]

    rotated = cli_json(server, "secrets", "rotate", app_id, "--grace-seconds", "60")
    assert rotated["clientId"] == client_id and rotated["previousExpiresAt"]
    files = wait_for_files(spool, 2)
    secrets = [f["payload"]["applicationOAuthClientNewSecret"]["newClientSecret"]
               for f in files if "applicationOAuthClientNewSecret" in f["payload"]]
    assert secrets == [rotated["clientSecret"]]
    mode = os.stat(os.path.join(spool, rotated["notificationId"] + ".json")).st_mode & 0o777
    assert mode == 0o600

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        items = cli_json(server, "deliveries", "list", "--app", app_id)["items"]
        if all(d["state"] == "delivered" for d in items):
            break
        time.sleep(0.1)
    assert [d["state"] for d in items] == ["delivered", "delivered"]

    states = sorted(s["state"] for s in cli_json(server, "secrets", "list", app_id)["items"])
    assert states == ["current", "previous"]
    assert len(cli_json(server, "secrets", "finish", app_id)["revoked"]) == 1
    states = sorted(s["state"] for s in cli_json(server, "secrets", "list", app_id)["items"])
    assert states == ["current", "revoked"]


def test_regenerate_asks_for_confirmation(server):
    created = cli_json(server, "apps", "create", "--name", "cli-regen")
    env = dict(os.environ, REKEY_URL=server.base, REKEY_API_TOKEN=server.api_token)
    out = subprocess.run([REKEY_BIN, "secrets", "regenerate", created["app"]["id"]],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode != 0 and "--yes" in out.stderr
    regenerated = cli_json(server, "secrets", "regenerate", created["app"]["id"], "--yes")
    assert regenerated["clientSecret"] != created["clientSecret"]


def test_members_are_added_given_roles_and_removed_through_the_cli(server):
    added = cli_json(server, "members", "add", "--email", "dev-cli@example.com", "--role", "developer")
    assert added["role"] == "developer" and added["apiToken"].startswith("rkt_")
    created = cli_json(server, "apps", "create", "--name", "robot")
    member = cli_json(server, "members", "set-role", "app", created["app"]["id"], "org_member")
    assert member == {**member, "kind": "app", "role": "org_member"}
    listed = cli_json(server, "members", "list")
    assert {(m["kind"], m["role"]) for m in listed} >= {("user", "org_owner"), ("user", "developer"), ("app", "org_member")}
    server.cli("members", "remove", "user", added["userId"], env_extra={"REKEY_API_TOKEN": server.api_token})
    assert added["userId"] not in {m["id"] for m in cli_json(server, "members", "list")}


def test_the_audit_trail_is_read_through_the_cli(server):
    created = cli_json(server, "apps", "create", "--name", "audited")
    events = cli_json(server, "audit", "list", "--app", created["app"]["id"])["items"]
    assert {e["action"] for e in events} == {"app.created", "secret.created"}
    assert created["clientSecret"] not in json.dumps(events)


def test_apps_are_named_by_client_id_and_sqs_regions_come_from_the_queue_url(server):
    created = cli_json(server, "apps", "create", "--name", "cli-by-client-id")
    client_id = created["app"]["clientId"]
    assert cli_json(server, "apps", "show", client_id)["id"] == created["app"]["id"]
    dest = cli_json(server, "destinations", "set", client_id,
                    "--sqs-queue-url", "https://sqs.eu-west-2.amazonaws.com/123456789012/rekey")
    assert dest["region"] == "eu-west-2"
    assert cli_json(server, "deliveries", "list", "--app", client_id)["items"] == []
    human = server.cli("apps", "show", client_id, env_extra={"REKEY_API_TOKEN": server.api_token})
    # Which grace applies to which rotation path.
    assert "native and CSP rotations" in human and "7 days (SP-API rotations)" in human


def test_an_unreachable_server_names_the_setting_that_points_at_it(server):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, REKEY_URL=f"http://127.0.0.1:{port}", REKEY_API_TOKEN=server.api_token)
    out = subprocess.run([REKEY_BIN, "apps", "list"], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode != 0
    assert "cannot reach" in out.stderr and "--url or REKEY_URL" in out.stderr, out.stderr


def test_a_refused_init_leaves_nothing_behind_and_init_can_run_again(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKEY_")}
    env["REKEY_DATA_DIR"] = str(tmp_path / "data")
    bad = subprocess.run([REKEY_BIN, "init", "--email", "not-an-email"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode != 0 and "--email" in bad.stderr
    good = subprocess.run([REKEY_BIN, "init", "--email", "owner@example.com", "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["apiToken"].startswith("rkt_")


def test_the_management_commands_find_the_server_in_its_config_file(server, tmp_path):
    config = tmp_path / "rekey.toml"
    config.write_text(f'listen = "0.0.0.0:{server.port}"\n')
    env = {k: v for k, v in os.environ.items() if k != "REKEY_URL"}
    env["REKEY_API_TOKEN"] = server.api_token
    out = subprocess.run([REKEY_BIN, "apps", "list", "--config", str(config), "--output", "json"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "items" in json.loads(out.stdout)

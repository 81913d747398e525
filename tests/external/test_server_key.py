"""Server-key safety (issue 13): the database records a check value of its key; a command
with a missing or wrong key stops with a clear message and changes nothing, and a key is
only made for an empty database."""

import os
import sqlite3
import subprocess

import requests

from conftest import REKEY_BIN, new_server


def serve_fails(srv, **env):
    """Starts `rekey serve`; it must exit non-zero at once. Returns its stderr."""
    env = dict(os.environ, REKEY_DATA_DIR=srv.data_dir, REKEY_LISTEN=f"127.0.0.1:{srv.port}",
               **env)
    out = subprocess.run([REKEY_BIN, "serve"], capture_output=True, text=True, env=env,
                         timeout=30)
    assert out.returncode != 0, out.stderr
    return out.stderr


def cli_fails(srv, *args):
    env = dict(os.environ, REKEY_DATA_DIR=srv.data_dir)
    out = subprocess.run([REKEY_BIN, *args], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode != 0, out.stdout
    return out.stderr


def set_up(tmp_path):
    """A server that ran once (so it has a signing key) and an app whose token works."""
    srv = new_server(tmp_path)
    srv.start()
    created = srv.create_app("read")
    srv.stop()
    return srv, created["app"]["clientId"], created["clientSecret"]


def token_works(srv, cid, secret):
    srv.start()
    try:
        return requests.post(srv.base + "/oauth2/token", auth=(cid, secret),
                             data={"grant_type": "client_credentials"}, timeout=5).status_code == 200
    finally:
        srv.stop()


def test_a_database_restored_without_its_key_refuses_to_start_and_makes_no_key(tmp_path):
    srv, cid, secret = set_up(tmp_path)
    key_file = os.path.join(srv.data_dir, "server.key")
    saved = open(key_file).read()
    os.remove(key_file)
    err = serve_fails(srv)
    assert "no server key for this database" in err and "No key was made" in err, err
    assert not os.path.exists(key_file)
    # The same for the commands that open the database.
    assert "no server key" in cli_fails(srv, "console-link", "--email", "owner@example.com")
    assert "no server key" in cli_fails(srv, "signing-keys", "rotate")
    assert not os.path.exists(key_file)
    # With the key back, everything works as before.
    with open(key_file, "w") as f:
        f.write(saved)
    os.chmod(key_file, 0o600)
    assert token_works(srv, cid, secret)


def test_a_wrong_key_is_refused_by_every_command_before_it_changes_anything(tmp_path):
    srv, cid, secret = set_up(tmp_path)
    key_file = os.path.join(srv.data_dir, "server.key")
    right = open(key_file).read()
    wrong = subprocess.run([REKEY_BIN, "server-key", "generate"], capture_output=True,
                           text=True, check=True).stdout.strip()
    assert wrong != right.strip() and len(wrong) == 44
    # Given directly: refused.
    assert "does not match the database" in serve_fails(srv, REKEY_SERVER_KEY=wrong)
    # In the key file: refused by serve and the database commands alike.
    with open(key_file, "w") as f:
        f.write(wrong)
    assert "does not match the database" in serve_fails(srv)
    for args in (["migrate"], ["signing-keys", "rotate"], ["signing-keys", "list"],
                 ["console-link", "--email", "owner@example.com"]):
        assert "does not match the database" in cli_fails(srv, *args), args
    keys = sqlite3.connect(os.path.join(srv.data_dir, "rekey.db")).execute(
        "SELECT COUNT(*) FROM signing_keys").fetchone()[0]
    assert keys == 1  # signing-keys rotate added nothing
    with open(key_file, "w") as f:
        f.write(right)
    assert token_works(srv, cid, secret)


def test_a_database_from_before_key_checks_is_checked_against_its_signing_keys(tmp_path):
    srv, cid, secret = set_up(tmp_path)
    db = sqlite3.connect(os.path.join(srv.data_dir, "rekey.db"))
    db.execute("DELETE FROM server_key_check")
    db.commit()
    key_file = os.path.join(srv.data_dir, "server.key")
    right = open(key_file).read()
    wrong = subprocess.run([REKEY_BIN, "server-key", "generate"], capture_output=True,
                           text=True, check=True).stdout.strip()
    with open(key_file, "w") as f:
        f.write(wrong)
    assert "does not match the database" in serve_fails(srv)
    assert db.execute("SELECT COUNT(*) FROM server_key_check").fetchone()[0] == 0
    with open(key_file, "w") as f:
        f.write(right)
    assert token_works(srv, cid, secret)
    # The right key was recorded on the way.
    assert db.execute("SELECT COUNT(*) FROM server_key_check").fetchone()[0] == 1


def test_a_generated_key_sets_up_a_new_database(tmp_path):
    key = subprocess.run([REKEY_BIN, "server-key", "generate"], capture_output=True, text=True,
                         check=True).stdout.strip()
    srv = new_server_with_key(tmp_path, key)
    assert not os.path.exists(os.path.join(srv.data_dir, "server.key"))
    srv.start(REKEY_SERVER_KEY=key)
    try:
        assert requests.get(srv.base + "/readyz", timeout=5).status_code == 200
    finally:
        srv.stop()


def new_server_with_key(tmp_path, key):
    from conftest import Server, free_port
    import json

    srv = Server(tmp_path / "data", free_port(), tmp_path / "server.log")
    init = json.loads(srv.cli("init", "--email", "owner@example.com", "--output", "json",
                              env_extra={"REKEY_SERVER_KEY": key}))
    srv.api_token = init["apiToken"]
    return srv


def test_a_rotated_signing_key_is_published_before_it_signs(tmp_path):
    """`rekey signing-keys rotate` publishes the new key at once; the running server picks it
    up (JWKS) but keeps signing with the current key until the pre-publication time."""
    import time

    import jwt as pyjwt

    srv = new_server(tmp_path)
    srv.start(REKEY_SIGNING_KEY_RELOAD_SECONDS="1", RUST_LOG="info")
    try:
        created = srv.create_app("read")
        cid, secret = created["app"]["clientId"], created["clientSecret"]

        def kid():
            res = requests.post(srv.base + "/oauth2/token", auth=(cid, secret),
                                data={"grant_type": "client_credentials"}, timeout=5)
            return pyjwt.get_unverified_header(res.json()["access_token"])["kid"]

        first = kid()
        out = srv.cli("signing-keys", "rotate")
        assert "published now, signing from" in out and "signs from" in out, out
        for _ in range(50):
            jwks = requests.get(srv.base + "/.well-known/jwks.json", timeout=5).json()["keys"]
            if len(jwks) == 2:
                break
            time.sleep(0.1)
        assert len(jwks) == 2
        assert kid() == first
    finally:
        srv.stop()
    log = open(srv.log_path, encoding="utf-8").read()
    assert "picked up a new signing key: published now, signing later" in log


def test_only_serve_and_init_make_a_key_and_one_signing_key_waits_at_a_time(tmp_path):
    from conftest import Server, free_port

    # Pointed at nothing: the database commands make neither a database nor a key.
    srv = Server(tmp_path / "fresh", free_port(), tmp_path / "fresh.log")
    for args in (["console-link", "--email", "x@example.com"], ["signing-keys", "rotate"],
                 ["signing-keys", "list"]):
        assert "no database at" in cli_fails(srv, *args), args
    assert not os.path.exists(srv.data_dir)
    # An empty database (migrated, never set up): they make no key for it.
    srv.cli("migrate")
    assert "no server key" in cli_fails(srv, "console-link", "--email", "x@example.com")
    assert "no server key" in cli_fails(srv, "signing-keys", "rotate")
    assert not os.path.exists(os.path.join(srv.data_dir, "server.key"))

    srv, _, _ = set_up(tmp_path / "set-up")
    srv.cli("signing-keys", "rotate")
    err = cli_fails(srv, "signing-keys", "rotate")
    assert "already published and starts signing at" in err, err
    listed = srv.cli("signing-keys", "list")
    assert "published, signs from" in listed and "published until" in listed, listed

"""The binary as an operator meets it: private files, one serving process per SQLite
database, and quiet pipes."""

import os
import stat
import subprocess

import pytest
import requests

from conftest import REKEY_BIN, free_port, new_server


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_data_directory_and_its_files_are_private(tmp_path):
    srv = new_server(tmp_path)
    data = srv.data_dir
    # A database left world-readable by an earlier version is tightened at start.
    os.chmod(os.path.join(data, "rekey.db"), 0o644)
    os.chmod(data, 0o755)
    srv.start()
    try:
        requests.get(srv.base + "/readyz", timeout=5)
        assert mode(data) == 0o700
        for name in ("rekey.db", "rekey.db-wal", "rekey.db-shm", "server.key", "rekey.db.lock"):
            path = os.path.join(data, name)
            assert os.path.exists(path), name
            assert mode(path) == 0o600, f"{name}: {oct(mode(path))}"
    finally:
        srv.stop()


def test_a_fresh_database_is_private_from_the_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKEY_")}
    env["REKEY_DATA_DIR"] = str(tmp_path / "fresh")
    out = subprocess.run([REKEY_BIN, "init", "--email", "o@example.com"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert mode(tmp_path / "fresh") == 0o700
    for name in os.listdir(tmp_path / "fresh"):
        assert mode(tmp_path / "fresh" / name) == 0o600, name


def test_a_second_serve_on_the_same_sqlite_database_refuses_to_start(tmp_path):
    srv = new_server(tmp_path)
    srv.start()
    try:
        env = dict(os.environ, REKEY_DATA_DIR=srv.data_dir, REKEY_LISTEN=f"127.0.0.1:{free_port()}")
        second = subprocess.run([REKEY_BIN, "serve"], capture_output=True, text=True, env=env, timeout=30)
        assert second.returncode != 0
        assert "another `rekey serve`" in second.stderr and "rekey.db.lock" in second.stderr
        # The first one serves on.
        assert requests.get(srv.base + "/readyz", timeout=5).status_code == 200
    finally:
        srv.stop()
    # Once it has stopped, the database can be served again.
    srv.start()
    srv.stop()


def test_an_explicit_sqlite_url_is_locked_and_private_too(tmp_path):
    db = tmp_path / "elsewhere" / "mine.db"
    db.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKEY_")}
    env.update(REKEY_DATA_DIR=str(tmp_path / "data"), REKEY_DATABASE_URL=f"sqlite://{db}?mode=rwc",
               REKEY_LISTEN=f"127.0.0.1:{free_port()}", REKEY_SHUTDOWN_DRAIN_SECONDS="0")
    first = subprocess.Popen([REKEY_BIN, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        import time
        deadline = time.monotonic() + 30
        while not os.path.exists(str(db) + ".lock") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        env2 = dict(env, REKEY_LISTEN=f"127.0.0.1:{free_port()}")
        second = subprocess.run([REKEY_BIN, "serve"], capture_output=True, text=True, env=env2, timeout=30)
        assert second.returncode != 0 and "mine.db.lock" in second.stderr, second.stderr
        assert mode(db) == 0o600
    finally:
        first.terminate()
        first.wait(timeout=30)


def test_a_closed_pipe_ends_a_command_quietly():
    # A pipe whose reading end is closed before the command writes (as after `| head -1`).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run([REKEY_BIN, "default-config"], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(write_end)
    assert "panicked" not in out.stderr and "Broken pipe" not in out.stderr, out.stderr
    assert out.returncode in (0, -13), out.returncode  # done, or ended by SIGPIPE


def test_sigterm_drains_no_request_sent_before_the_listener_closes_fails(tmp_path):
    import signal
    import threading
    import time

    srv = new_server(tmp_path)
    srv.start(REKEY_SHUTDOWN_DRAIN_SECONDS="2")
    created = srv.create_app()
    cid, secret = created["app"]["clientId"], created["clientSecret"]
    results = []  # (sent at, status or the exception's name)
    stop = threading.Event()

    def client():
        while not stop.is_set():
            sent = time.monotonic()
            try:
                # A new connection per request, as a client behind a load balancer would see.
                res = requests.post(srv.base + "/oauth2/token", auth=(cid, secret),
                                    data={"grant_type": "client_credentials"}, timeout=5)
                results.append((sent, res.status_code))
            except requests.RequestException as e:
                results.append((sent, type(e).__name__))
            time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    term_at = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    ready_during_drain = requests.get(srv.base + "/readyz", timeout=5).status_code
    srv.proc.wait(timeout=30)
    closed_at = time.monotonic()
    stop.set()
    for t in threads:
        t.join()
    assert ready_during_drain == 503
    assert closed_at - term_at >= 2, "the listener stayed open for the drain"
    during = [r for s, r in results if term_at <= s < term_at + 1.9]
    assert during and all(r == 200 for r in during), during
    before_close = [r for s, r in results if s < term_at + 1.9]
    assert all(r == 200 for r in before_close), [r for r in before_close if r != 200]


def test_at_the_default_level_the_log_has_an_access_line_and_a_line_per_change(tmp_path):
    srv = new_server(tmp_path)
    srv.start(RUST_LOG="info")
    try:
        created = srv.create_app()
        cid, secret = created["app"]["clientId"], created["clientSecret"]
        res = requests.post(srv.base + "/oauth2/token", auth=(cid, secret),
                            data={"grant_type": "client_credentials"}, timeout=5)
        assert res.status_code == 200
    finally:
        srv.stop()
    log = open(srv.log_path, encoding="utf-8").read()
    access = [l for l in log.splitlines() if "route=/oauth2/token" in l and "finished processing request" in l]
    assert access, log[-2000:]
    assert "status=200" in access[0] and "latency=" in access[0] and "client=127.0.0.1" in access[0]
    assert "request_id=" in access[0]
    changes = [l for l in log.splitlines() if " audit " in l and "action=app.created" in l]
    assert changes and "actor=user:" in changes[0], log[-2000:]
    assert secret not in log


def test_slow_clients_are_cut_off_and_open_connections_are_capped(tmp_path):
    import socket
    import time

    srv = new_server(tmp_path)
    srv.start(REKEY_HEADER_READ_TIMEOUT_SECONDS="1", REKEY_MAX_CONNECTIONS="5")
    try:
        def half_sent():
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n")  # never finishes
            return s

        def closed_by_server(s, wait):
            s.settimeout(wait)
            try:
                return s.recv(1024) == b""
            except ConnectionResetError:
                return True
            except socket.timeout:
                return False

        socks = [half_sent() for _ in range(8)]
        time.sleep(0.3)
        # Over the cap of 5: the extra ones are closed at once.
        closed_at_once = sum(closed_by_server(s, 0.2) for s in socks)
        assert closed_at_once >= 3, closed_at_once
        # The header-read timeout closes the rest.
        time.sleep(1.5)
        assert all(closed_by_server(s, 1.0) for s in socks)
        for s in socks:
            s.close()
        # The server still serves.
        assert requests.get(srv.base + "/readyz", timeout=5).status_code == 200
    finally:
        srv.stop()


def test_serve_on_postgresql_needs_one_public_url(tmp_path):
    """Nodes on one PostgreSQL database must share an issuer; without public_url each would
    be its own (its listen address) and refuse the others' tokens."""
    url = os.environ.get("REKEY_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            raise AssertionError("REKEY_TEST_POSTGRES_URL must be set in CI")
        pytest.skip("no PostgreSQL")
    env = dict(os.environ, REKEY_DATA_DIR=str(tmp_path / "data"), REKEY_DATABASE_URL=url,
               REKEY_LISTEN="127.0.0.1:0")
    env.pop("REKEY_PUBLIC_URL", None)
    out = subprocess.run([REKEY_BIN, "serve"], capture_output=True, text=True, env=env,
                         timeout=30)
    assert out.returncode != 0
    assert "public_url must be set with PostgreSQL" in out.stderr, out.stderr

"""Rekey as a cluster and across upgrades, driven as an operator would: several `rekey serve`
processes on one PostgreSQL database (a rolling upgrade, three nodes under load through a
kill -9 and a signing-key rotation, `rekey doctor` across nodes), and `rekey store copy` from
the embedded SQLite to PostgreSQL. Real binaries, the real PostgreSQL named by
REKEY_TEST_POSTGRES_URL, and PyJWT as the outside verifier of tokens."""

import http.server
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
import uuid

import jwt
import pytest
import requests

from conftest import FAST_DELIVERY_ENV, REKEY_BIN, Server, free_port, new_server

PG = os.environ.get("REKEY_TEST_POSTGRES_URL")
PUBLIC_URL = "http://rekey.cluster.test"


def psql(sql, schema=None):
    env = dict(os.environ)
    if schema:
        env["PGOPTIONS"] = f"-c search_path={schema}"
    out = subprocess.run(["psql", PG, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def schema():
    """A fresh PostgreSQL schema, dropped afterwards."""
    if not PG:
        if os.environ.get("CI") == "true":
            raise AssertionError("REKEY_TEST_POSTGRES_URL must be set in CI")
        pytest.skip("no PostgreSQL")
    name = f"rekey_ext_{int(time.time())}_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE SCHEMA {name}")
    yield name
    psql(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def pg_url(schema):
    sep = "&" if "?" in PG else "?"
    return f"{PG}{sep}options[search_path]={schema}"


def rekey(*args, env=None, timeout=120):
    return subprocess.run([REKEY_BIN, *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)


class Cluster:
    """Nodes of one cluster: one database, one server key, one public_url, one spool root."""

    def __init__(self, tmp_path, schema, **settings):
        self.tmp = tmp_path
        self.schema = schema
        self.spool = tmp_path / "spool"
        self.env = {
            "REKEY_DATABASE_URL": pg_url(schema),
            "REKEY_SERVER_KEY": rekey("server-key", "generate").stdout.strip(),
            "REKEY_PUBLIC_URL": PUBLIC_URL,
            "REKEY_FILE_DESTINATION_ROOT": str(self.spool),
            **FAST_DELIVERY_ENV,
            **settings,
        }
        init = json.loads(self.cli("init", "--email", "owner@example.com", "--output", "json"))
        self.api_token, self.org_id = init["apiToken"], init["orgId"]
        self.nodes = []

    def cli(self, *args, **env):
        out = rekey(*args, env={"REKEY_DATA_DIR": str(self.tmp / "cli"), **self.env, **env})
        assert out.returncode == 0, f"rekey {args}: {out.stderr}"
        return out.stdout

    def add_node(self, **env):
        i = len(self.nodes)
        node = Server(self.tmp / f"node{i}", free_port(), self.tmp / f"node{i}.log")
        node.api_token, node.org_id = self.api_token, self.org_id
        node.cluster_env = {**self.env, **env}
        self.nodes.append(node)
        return node

    def start(self, node):
        node.start(**node.cluster_env)

    def stop_all(self):
        for n in self.nodes:
            n.stop()


def token(base, client_id, secret):
    return requests.post(base + "/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(client_id, secret), timeout=5)


class StrictVerifier:
    """A resource server that trusts one node's JWKS: it caches it for exactly its max-age
    and never fetches it early, so a token signed with a key it has not seen is refused."""

    def __init__(self, base):
        self.base, self.keys, self.expires = base, {}, 0.0

    def verify(self, access_token):
        if time.monotonic() >= self.expires:
            res = requests.get(self.base + "/.well-known/jwks.json", timeout=5)
            max_age = int(re.search(r"max-age=(\d+)", res.headers["cache-control"]).group(1))
            self.keys = {k["kid"]: jwt.PyJWK(k).key for k in res.json()["keys"]}
            self.expires = time.monotonic() + max_age
        kid = jwt.get_unverified_header(access_token)["kid"]
        if kid not in self.keys:
            raise AssertionError(f"{self.base} does not publish {kid} (yet)")
        return jwt.decode(access_token, self.keys[kid], algorithms=["EdDSA"], issuer=PUBLIC_URL,
                          options={"verify_aud": False})


def create_app_with_spool(cluster, node, name):
    created = json.loads(node.cli("apps", "create", "--name", name, "--output", "json",
                                  env_extra={"REKEY_API_TOKEN": cluster.api_token}))
    app_id = created["app"]["id"]
    node.cli("destinations", "set", app_id, "--directory", name, "--output", "json",
             env_extra={"REKEY_API_TOKEN": cluster.api_token})
    return app_id, created["app"]["clientId"], created["clientSecret"]


def spooled_secrets(directory):
    """The new secrets delivered into a spool directory, by notification id."""
    found = {}
    for f in os.listdir(directory) if os.path.isdir(directory) else []:
        if f.endswith(".json"):
            body = json.load(open(os.path.join(directory, f)))
            new = body["payload"].get("applicationOAuthClientNewSecret")
            if new:
                found[body["notificationMetadata"]["notificationId"]] = new["newClientSecret"]
    return found


def test_three_nodes_through_a_kill_9_and_a_signing_key_rotation(tmp_path, schema):
    """Three nodes, one database. Tokens are fetched from every node and each is verified on
    the two others through their JWKS, by a verifier that honours the JWKS max-age and never
    refetches early; secrets are rotated and finished through every node; a server admin
    rotates the signing key through the API; one node is killed with SIGKILL in the middle and
    restarted. No token request fails and no token is refused anywhere, every notification is
    delivered, every app keeps a working secret, and the CSP rate limit holds across nodes."""
    cluster = Cluster(tmp_path, schema,
                      REKEY_SIGNING_KEY_RELOAD_SECONDS="1",
                      REKEY_JWKS_MAX_AGE_SECONDS="2",
                      REKEY_SIGNING_KEY_PREPUBLISH_SECONDS="4",
                      REKEY_DELIVERY_LEASE_SECONDS="5",
                      REKEY_CSP_RATE_PER_SECOND="1",
                      REKEY_CSP_RATE_BURST="5")
    nodes = [cluster.add_node() for _ in range(3)]
    for n in nodes:
        cluster.start(n)
    apps = [create_app_with_spool(cluster, nodes[i % 3], f"app{i}") for i in range(6)]
    lock = threading.Lock()
    secrets = {cid: secret for _, cid, secret in apps}
    known = {cid: {secret} for _, cid, secret in apps}
    verifiers = [StrictVerifier(n.base) for n in nodes]
    stop = threading.Event()
    failures, kids = [], set()
    counts = {"tokens": 0, "verified": 0, "rotations": 0}
    down = set()

    def fetch_tokens():
        i = 0
        while not stop.is_set():
            i += 1
            _, cid, _ = apps[i % len(apps)]
            n = i % 3
            with lock:
                secret = secrets[cid]
            try:
                res = token(nodes[n].base, cid, secret)
            except requests.ConnectionError:
                continue  # the killed node: a load balancer sends the next request elsewhere
            if res.status_code != 200:
                with lock:
                    if secrets[cid] == secret:
                        failures.append(f"token from node {n}: {res.status_code} {res.text}")
                continue
            access = res.json()["access_token"]
            counts["tokens"] += 1
            kids.add(jwt.get_unverified_header(access)["kid"])
            verified_by = 0
            for other in ((n + 1) % 3, (n + 2) % 3):
                if other in down:
                    continue
                try:
                    verifiers[other].verify(access)
                    verified_by += 1
                except requests.ConnectionError:
                    pass
                except Exception as e:  # noqa: BLE001 - every refusal is a failure
                    failures.append(f"token of node {n} refused by node {other}: {e}")
            counts["verified"] += verified_by
            if verified_by == 0:
                # At most one node is down at a time: another one always verifies.
                failures.append(f"a token of node {n} was verified nowhere")

    def api(n, method, path, **kw):
        res = requests.request(method, nodes[n].base + path, timeout=10,
                               headers={"Authorization": "Bearer " + nodes[n].access_token()}, **kw)
        return res

    def adopt_delivered_secret(app_index):
        """A rotation whose answer was lost with its node: the new secret, if it was made,
        arrives in the app's spool, as it would at the client."""
        _, cid, _ = apps[app_index]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            new = [s for s in spooled_secrets(cluster.spool / cluster.org_id / f"app{app_index}").values()
                   if s not in known[cid]]
            if new:
                with lock:
                    known[cid].add(new[0])
                    secrets[cid] = new[0]
                return True
            time.sleep(0.2)
        return False

    def rotate_and_finish():
        i, pending_finish = 0, []
        while not stop.is_set():
            i += 1
            k, n = i % len(apps), i % 3
            app_id, cid, _ = apps[k]
            base = f"/api/v1/orgs/{cluster.org_id}/apps/{app_id}/secrets"
            try:
                if k in pending_finish:
                    res = api(n, "POST", base + "/finish")
                    if res.status_code == 200:
                        pending_finish.remove(k)
                    else:
                        failures.append(f"finish on node {n}: {res.status_code} {res.text}")
                    continue
                res = api(n, "POST", base + "/rotate", json={"graceSeconds": 120})
            except requests.ConnectionError:
                if adopt_delivered_secret(k):
                    pending_finish.append(k)
                continue
            if res.status_code != 201 and res.status_code != 200:
                failures.append(f"rotate on node {n}: {res.status_code} {res.text}")
                continue
            with lock:
                secrets[cid] = res.json()["clientSecret"]
                known[cid].add(secrets[cid])
            counts["rotations"] += 1
            pending_finish.append(k)
            time.sleep(0.05)

    workers = [threading.Thread(target=fetch_tokens), threading.Thread(target=rotate_and_finish)]
    for w in workers:
        w.start()
    try:
        time.sleep(3)
        down.add(1)
        nodes[1].kill9()
        time.sleep(2)
        cluster.start(nodes[1])
        down.discard(1)
        rotated = api(2, "POST", "/api/v1/signing-keys")
        assert rotated.status_code == 201, rotated.text
        new_kid = rotated.json()["kid"]
        # Pre-published for 4 s, then signing: let tokens of the new key be verified a while.
        time.sleep(9)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    assert failures == [], failures[:5]
    assert new_kid in kids, "tokens of the new signing key were issued and verified"
    assert len(kids) == 2
    for n in nodes:
        log = open(n.log_path).read()
        assert "picked up a new signing key" in log and "signing with a new key" in log, n.log_path
    assert counts["tokens"] > 50 and counts["verified"] > counts["tokens"], counts
    assert counts["rotations"] >= 10, counts

    # Every notification in the outbox was delivered into its app's spool.
    ids = psql("SELECT notification_id || ' ' || app_id FROM deliveries", schema).splitlines()
    assert len(ids) >= counts["rotations"]
    app_dir = {app_id: f"app{i}" for i, (app_id, _, _) in enumerate(apps)}
    deadline = time.monotonic() + 40
    missing = ids
    while missing and time.monotonic() < deadline:
        missing = [line for line in ids if not os.path.exists(
            cluster.spool / cluster.org_id / app_dir[line.split()[1]]
            / f"{line.split()[0]}.json")]
        time.sleep(0.2)
    assert missing == [], f"{len(missing)} notifications not delivered"
    assert psql("SELECT COUNT(*) FROM deliveries WHERE state = 'dead'", schema) == "0"

    # Every app works with its secret on every node.
    for _, cid, _ in apps:
        for n in nodes:
            assert token(n.base, cid, secrets[cid]).status_code == 200

    # The CSP rate limit is one bucket for the cluster, not one per node.
    csp_path = f"/csp/gateway/am/api/orgs/{cluster.org_id}/oauth-apps"
    access = [n.access_token() for n in nodes]
    started, codes = time.monotonic(), []
    for i in range(30):
        res = requests.get(nodes[i % 3].base + csp_path, timeout=5,
                           headers={"Authorization": "Bearer " + access[i % 3]})
        codes.append(res.status_code)
    elapsed = time.monotonic() - started
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) <= 5 + int(elapsed * 1) + 1, (codes, elapsed)
    assert codes.count(429) > 0
    cluster.stop_all()


def test_a_rolling_upgrade_over_a_newer_compatible_migration_loses_no_request(tmp_path, schema):
    """A newer release migrated the database (an additive migration that says this release
    may run against it). The old nodes restart one by one and serve, while a client that
    fails over between them (as a load balancer does) gets every token. A migration this
    release cannot run against is refused at start, naming it, and the running node is left
    alone."""
    cluster = Cluster(tmp_path, schema)
    nodes = [cluster.add_node(), cluster.add_node()]
    for n in nodes:
        cluster.start(n)
    created = json.loads(nodes[0].cli("apps", "create", "--name", "up", "--output", "json",
                                      env_extra={"REKEY_API_TOKEN": cluster.api_token}))
    cid, secret = created["app"]["clientId"], created["clientSecret"]
    stop, failures, served = threading.Event(), [], [0]

    def client():
        i = 0
        while not stop.is_set():
            i += 1
            for n in (i % 2, (i + 1) % 2):
                try:
                    res = token(nodes[n].base, cid, secret)
                except requests.ConnectionError:
                    continue
                if res.status_code == 200:
                    served[0] += 1
                else:
                    failures.append(f"node {n}: {res.status_code} {res.text}")
                break
            else:
                failures.append("no node answered")

    known = int(psql("SELECT MAX(version) FROM _sqlx_migrations", schema))
    psql("CREATE TABLE future_9001 (id TEXT PRIMARY KEY); "
         "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) "
         "VALUES (9001, 'future additive', TRUE, '\\x00', 1); "
         f"INSERT INTO schema_compat (version, oldest_compatible) VALUES (9001, {known})", schema)
    worker = threading.Thread(target=client)
    worker.start()
    try:
        for n in nodes:
            time.sleep(0.5)
            n.stop()
            time.sleep(0.3)
            cluster.start(n)
    finally:
        time.sleep(0.5)
        stop.set()
        worker.join(timeout=30)
    assert failures == [], failures[:5]
    assert served[0] > 20
    assert "newer migrations" in open(nodes[0].log_path).read()

    psql("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) "
         "VALUES (9002, 'future contract', TRUE, '\\x00', 1); "
         "INSERT INTO schema_compat (version, oldest_compatible) VALUES (9002, 9002)", schema)
    nodes[0].stop()
    env = {**cluster.env, "REKEY_DATA_DIR": nodes[0].data_dir,
           "REKEY_LISTEN": f"127.0.0.1:{nodes[0].port}"}
    out = rekey("serve", env=env, timeout=30)
    assert out.returncode != 0
    assert "migration 9002 (future contract)" in out.stderr, out.stderr
    assert "cannot run against" in out.stderr
    migrate = rekey("migrate", env=env)
    assert migrate.returncode != 0 and "migration 9002" in migrate.stderr
    assert token(nodes[1].base, cid, secret).status_code == 200
    cluster.stop_all()


def doctor(env, *args):
    out = rekey("doctor", "--output", "json", *args, env=env, timeout=60)
    report = json.loads(out.stdout)
    assert report["ok"] == (out.returncode == 0), out
    return {c["check"]: c for c in report["checks"]}, out.returncode


def test_doctor_checks_a_cluster(tmp_path, schema):
    """`rekey doctor` against a running cluster: all well, then each of the problems it must
    catch: nodes that disagree on public_url, a wrong server key, a destination that refuses,
    a signing key without a pre-published successor, an unreachable database."""
    cluster = Cluster(tmp_path, schema)
    a = cluster.add_node()
    cluster.start(a)
    checks, rc = doctor(cluster.env, "--url", a.base)
    assert rc == 0, checks
    assert checks["public_url"]["status"] == "ok" and PUBLIC_URL in checks["public_url"]["detail"]
    assert checks["node issuer"]["status"] == "ok"
    assert checks["node jwks"]["status"] == "ok"
    assert checks["server key"]["status"] == "ok"

    b = cluster.add_node(REKEY_PUBLIC_URL="http://other.cluster.test")
    cluster.start(b)
    checks, rc = doctor(cluster.env)
    assert rc == 1
    assert checks["public_url"]["status"] == "problem"
    assert "other.cluster.test" in checks["public_url"]["detail"]
    b.stop()
    psql("DELETE FROM nodes WHERE public_url <> '" + PUBLIC_URL + "'", schema)

    wrong = rekey("server-key", "generate").stdout.strip()
    checks, rc = doctor({**cluster.env, "REKEY_SERVER_KEY": wrong})
    assert rc == 1 and checks["server key"]["status"] == "problem"
    assert "does not match" in checks["server key"]["detail"]

    created = json.loads(a.cli("apps", "create", "--name", "hooked", "--output", "json",
                               env_extra={"REKEY_API_TOKEN": cluster.api_token}))
    closed = free_port()
    a.cli("destinations", "set", created["app"]["id"], "--webhook-url",
          f"http://127.0.0.1:{closed}/hook", "--output", "json",
          env_extra={"REKEY_API_TOKEN": cluster.api_token})
    checks, rc = doctor(cluster.env)
    assert rc == 1 and checks["destinations"]["status"] == "problem"
    assert f"127.0.0.1:{closed}" in checks["destinations"]["detail"]
    a.cli("destinations", "remove", created["app"]["id"],
          env_extra={"REKEY_API_TOKEN": cluster.api_token})

    # The key has signed for two days; a one-day schedule wanted its successor by now.
    psql("UPDATE signing_keys SET created_at = created_at - 172800000", schema)
    checks, rc = doctor({**cluster.env, "REKEY_SIGNING_KEY_ROTATION_DAYS": "1"})
    assert rc == 1 and checks["signing keys"]["status"] == "problem"
    assert "no pre-published successor" in checks["signing keys"]["detail"]
    checks, rc = doctor(cluster.env)
    assert rc == 0, checks

    checks, rc = doctor({**cluster.env,
                         "REKEY_DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/x"})
    assert rc == 1 and checks["database"]["status"] == "problem"
    assert "unreachable" in checks["database"]["detail"]
    cluster.stop_all()


class Receiver(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):  # noqa: N802 - the stdlib's name
        Receiver.bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_store_copy_moves_a_sqlite_deployment_to_postgresql(tmp_path, schema):
    """A team outgrows the embedded SQLite: `rekey store copy` moves everything to
    PostgreSQL. Every client secret (current and previous) and the API token work there, a
    notification that was still pending when SQLite stopped is delivered from PostgreSQL, and
    a second copy into the same database is refused."""
    srv = new_server(tmp_path)
    srv.start(**FAST_DELIVERY_ENV)
    apps = [srv.create_app() for _ in range(3)]
    cli_env = {"REKEY_API_TOKEN": srv.api_token}
    hook_port = free_port()
    app_id = apps[0]["app"]["id"]
    srv.cli("destinations", "set", app_id, "--webhook-url", f"http://127.0.0.1:{hook_port}/hook",
            "--output", "json", env_extra=cli_env)
    rotated = json.loads(srv.cli("secrets", "rotate", app_id, "--output", "json",
                                 env_extra=cli_env))
    time.sleep(1)  # a failed attempt or two: the delivery stays pending
    srv.stop()
    db = os.path.join(srv.data_dir, "rekey.db")
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT state FROM deliveries").fetchall() == [("pending",)]

    target = pg_url(schema)
    out = rekey("store", "copy", "--from", f"sqlite://{db}", "--to", target, "--output", "json")
    assert out.returncode == 0, out.stderr
    tables = {t["table"]: t for t in json.loads(out.stdout)["tables"]}
    assert tables["apps"]["target"] == 3 and tables["deliveries"]["target"] == 1
    assert all(t["source"] == t["target"] for t in tables.values())
    again = rekey("store", "copy", "--from", f"sqlite://{db}", "--to", target)
    assert again.returncode != 0 and "not empty" in again.stderr, again.stderr

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    pg_node = Server(tmp_path / "pg-node", free_port(), tmp_path / "pg-node.log")
    pg_node.api_token = srv.api_token
    try:
        pg_node.start(REKEY_DATABASE_URL=target, REKEY_PUBLIC_URL=PUBLIC_URL,
                      REKEY_SERVER_KEY_FILE=os.path.join(srv.data_dir, "server.key"),
                      **FAST_DELIVERY_ENV)
        deadline = time.monotonic() + 20
        while not Receiver.bodies and time.monotonic() < deadline:
            time.sleep(0.1)
        assert Receiver.bodies, "the pending notification was delivered from PostgreSQL"
        new = Receiver.bodies[0]["payload"]["applicationOAuthClientNewSecret"]
        assert new["newClientSecret"] == rotated["clientSecret"]
        for app in apps:
            assert token(pg_node.base, app["app"]["clientId"], app["clientSecret"]).status_code == 200
        assert token(pg_node.base, apps[0]["app"]["clientId"], rotated["clientSecret"]).status_code == 200
        listed = json.loads(pg_node.cli("apps", "list", "--output", "json", env_extra=cli_env))
        assert len(listed["items"]) == 3
    finally:
        pg_node.stop()
        receiver.shutdown()


def test_the_sp_api_rotation_limit_holds_across_nodes(tmp_path, schema):
    """Ten rotations of one app at once, spread over two nodes: one rotates, every other is
    429 QuotaExceeded. With a bucket per node the second node would let one more through, to
    be refused as 400 "rotation in progress" instead."""
    cluster = Cluster(tmp_path, schema)
    nodes = [cluster.add_node(), cluster.add_node()]
    for n in nodes:
        cluster.start(n)
    env = {"REKEY_API_TOKEN": cluster.api_token}
    created = json.loads(nodes[0].cli(
        "apps", "create", "--name", "limited", "--scope",
        "sellingpartnerapi::client_credential:rotation", "--output", "json", env_extra=env))
    cid, secret = created["app"]["clientId"], created["clientSecret"]
    nodes[0].cli("destinations", "set", created["app"]["id"], "--directory", "limited",
                 "--output", "json", env_extra=env)
    token_res = requests.post(nodes[0].base + "/auth/o2/token", timeout=5, data={
        "grant_type": "client_credentials", "client_id": cid, "client_secret": secret,
        "scope": "sellingpartnerapi::client_credential:rotation"})
    assert token_res.status_code == 200, token_res.text
    access = token_res.json()["access_token"]
    results = []
    barrier = threading.Barrier(10)

    def rotate(i):
        barrier.wait()
        res = requests.post(nodes[i % 2].base + "/applications/2023-11-30/clientSecret",
                            headers={"x-amz-access-token": access}, timeout=10)
        code = res.json()["errors"][0]["code"] if res.status_code != 204 else None
        results.append((res.status_code, code))

    threads = [threading.Thread(target=rotate, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results, key=str) == sorted([(204, None)] + [(429, "QuotaExceeded")] * 9, key=str), results
    cluster.stop_all()

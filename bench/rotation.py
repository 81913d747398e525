"""Rotation scenarios of the benchmark harness (SPEC 12), run by bench/run.sh:

  throughput  rotations/s on distinct apps with the file destination, driven by wrk; then
              checks that every committed rotation's notification is in the spool
  latency     rotation-to-delivery time to an SQS queue (moto) and to a local webhook
  faults      kill -9 at random moments during rotations with webhook delivery; then
              counts notifications lost and apps left without a valid secret
  outage      the webhook receiver down for a while during rotations (default retry
              settings); then counts what arrived once it is back, and when

Each prints result and `RATIO` lines for the harness, and exits 1 when something was lost or
failed. The server is the `rekey` binary named by $REKEY_BIN, started on 127.0.0.1 through
the test suite's fixtures (tests/external/conftest.py). Every wait has a deadline.
"""

import argparse
import contextlib
import http.server
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "external"))
from conftest import AWS_TEST_ENV, free_port, new_server, start_moto  # noqa: E402

NEW_SECRET = "APPLICATION_OAUTH_CLIENT_NEW_SECRET"
QUIET = {"RUST_LOG": "warn"}


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


@contextlib.contextmanager
def workspace(prefix):
    """A temporary directory, and a list of things to stop, all cleaned up on any exit."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    stops = []
    try:
        yield work, stops
    finally:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()
        shutil.rmtree(work, ignore_errors=True)


def pin(pid, core):
    """Pins every thread of `pid` to `core` (the load generator runs on the other one)."""
    subprocess.run(["taskset", "-a", "-pc", str(core), str(pid)], check=True, capture_output=True)


class Api:
    """The native API with one access token (a user token lasts 30 minutes)."""

    def __init__(self, server):
        self.server = server
        self.token = server.access_token()
        self.http = requests.Session()

    def call(self, method, path, **kw):
        return self.http.request(
            method, self.server.base + path,
            headers={"Authorization": "Bearer " + self.token}, timeout=30, **kw,
        )

    def org(self, rest):
        return f"/api/v1/orgs/{self.server.org_id}{rest}"

    def create_app(self, name):
        res = self.call("POST", self.org("/apps"), json={"name": name, "scopes": ["read"]})
        assert res.status_code == 201, res.text
        return res.json()

    def set_destination(self, app_id, body):
        res = self.call("PUT", self.org(f"/apps/{app_id}/destinations/{NEW_SECRET}"), json=body)
        assert res.status_code == 200, res.text

    def rotate(self, app_id):
        return self.call("POST", self.org(f"/apps/{app_id}/secrets/rotate"), json={})

    def finish(self, app_id):
        return self.call("POST", self.org(f"/apps/{app_id}/secrets/finish"), json={})

    def secrets(self, app_id):
        res = self.call("GET", self.org(f"/apps/{app_id}/secrets"))
        assert res.status_code == 200, res.text
        return res.json()["items"]

    def pending_deliveries(self):
        res = self.call("GET", self.org("/deliveries?state=pending&pageLimit=1"))
        assert res.status_code == 200, res.text
        return len(res.json()["items"])

    def wait_until_delivered(self, timeout):
        deadline = time.monotonic() + timeout
        while self.pending_deliveries() > 0:
            if time.monotonic() > deadline:
                fail(f"deliveries still pending after {timeout} s")
            time.sleep(0.2)


def start_server(work, stops, **env):
    server = new_server(work)
    server.start(**QUIET, **env)
    stops.append(server.stop)
    return server


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wrk_result(out):
    for line in out.splitlines():
        if line.startswith("RESULT"):
            return dict(kv.split("=") for kv in line.split()[1:])
    raise RuntimeError("wrk printed no RESULT line:\n" + out)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_files(d):
    try:
        return sum(1 for n in os.listdir(d) if n.endswith(".json"))
    except FileNotFoundError:
        return 0


def throughput(args):
    with workspace("rekey-bench-rot-") as (work, stops):
        server = start_server(work, stops)
        pin(server.proc.pid, 0)
        api = Api(server)

        def make(i):
            app = api.create_app(f"rot-{i}")
            api.set_destination(app["app"]["id"], {"kind": "file", "directory": "rot"})
            return api.org(f"/apps/{app['app']['id']}/secrets/rotate")

        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            paths = list(pool.map(make, range(args.apps)))
        print(f"# created {args.apps} apps with file destinations in {time.monotonic() - t0:.1f} s")
        paths_file = work / "paths.txt"
        paths_file.write_text("\n".join(paths) + "\n")
        env = dict(os.environ, BENCH_PATHS=str(paths_file), BENCH_TOKEN=api.token, BENCH_THREADS="2")
        cpu_before = cpu_seconds(server.proc.pid)
        out = subprocess.run(
            ["taskset", "-c", "1", "wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s",
             "-s", "bench/rotate.lua", server.base + "/"],
            env=env, check=True, capture_output=True, text=True, timeout=args.duration + 60,
        ).stdout
        r = wrk_result(out)
        answered = int(r["requests"]) - int(r["errors"])
        # Requests in flight when wrk stopped commit too: wait for the outbox to drain, then
        # compare the spool with what the database says was committed.
        api.wait_until_delivered(120)
        cpu = cpu_seconds(server.proc.pid) - cpu_before
        server.stop()
        db = sqlite3.connect(f"file:{server.data_dir}/rekey.db?mode=ro", uri=True)
        committed = db.execute("SELECT (SELECT COUNT(*) FROM secrets) - (SELECT COUNT(*) FROM apps)").fetchone()[0]
        db.close()
        delivered = count_files(Path(server.spool_root) / server.org_id / "rot")
        rps = answered / (int(r["duration_us"]) / 1e6)
        print(
            f"rotation file destination    c={args.connections} rps={rps:.0f} "
            f"p50={int(r['p50_us']) / 1000:.2f}ms p99={int(r['p99_us']) / 1000:.2f}ms "
            f"p99.9={int(r['p999_us']) / 1000:.2f}ms cpu/rotation={cpu / max(committed, 1) * 1e6:.0f}us "
            f"errors={r['errors']} committed={committed} in_spool={delivered}"
        )
        print(f"RATIO {'rotations/s (SQLite, distinct apps)':<40} {rps / 200:.2f} of the 200/s target")
        if int(r["errors"]) > 0:
            fail(f"{r['errors']} rotations failed (too few apps for the duration? see --apps)")
        if delivered != committed:
            fail(f"{committed} rotations committed but {delivered} notifications in the spool")


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that keeps every body it gets, with its arrival time."""

    def __init__(self, port=0):
        received = self.received = []
        lock = self.lock = threading.Lock()
        self.arrived = threading.Condition(lock)
        arrived = self.arrived

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append((time.monotonic(), self.headers.get("webhook-id"), json.loads(body)))
                    arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def stop(self):
        self.shutdown()
        self.server_close()

    def arrival_of(self, secret, timeout):
        """When the notification carrying `secret` first arrived (None after `timeout`)."""
        def found():
            return next((t for (t, _, b) in self.received if new_secret_of(b) == secret), None)
        with self.lock:
            self.arrived.wait_for(lambda: found() is not None, timeout)
            return found()


def new_secret_of(envelope):
    p = envelope.get("payload", {}).get("applicationOAuthClientNewSecret") or {}
    return p.get("newClientSecret")


def latency(args):
    with workspace("rekey-bench-lat-") as (work, stops):
        moto_port = free_port()
        moto = start_moto(moto_port, work / "moto.log")
        stops.append(moto.kill)
        endpoint = f"http://127.0.0.1:{moto_port}"
        receiver = Receiver()
        stops.append(receiver.stop)
        server = start_server(work, stops, **AWS_TEST_ENV)
        api = Api(server)
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        queue = sqs.create_queue(QueueName="rekey-bench")["QueueUrl"]
        sqs_app = api.create_app("latency-sqs")["app"]["id"]
        api.set_destination(sqs_app, {"kind": "sqs", "queueUrl": queue, "region": "us-east-1",
                                      "endpointUrl": endpoint})
        hook_app = api.create_app("latency-webhook")["app"]["id"]
        api.set_destination(hook_app, {"kind": "webhook", "url": receiver.url})

        def rotate(app_id):
            res = api.rotate(app_id)
            assert res.status_code == 200, res.text
            return res.json()["clientSecret"]

        def one_sqs():
            # Timed to the message that carries this rotation's secret (a repeat of an
            # earlier one is skipped, not counted).
            t0 = time.monotonic()
            secret = rotate(sqs_app)
            while time.monotonic() - t0 < 30:
                got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                for m in got.get("Messages", []):
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                    if secret in m["Body"]:
                        return time.monotonic() - t0
            fail("an SQS notification did not arrive within 30 s")

        def one_webhook():
            t0 = time.monotonic()
            arrived = receiver.arrival_of(rotate(hook_app), timeout=30)
            if arrived is None:
                fail("a webhook notification did not arrive within 30 s")
            return arrived - t0

        for name, app_id, one in (("sqs (moto)", sqs_app, one_sqs), ("webhook", hook_app, one_webhook)):
            ms = []
            for _ in range(args.rotations):
                ms.append(one() * 1000)
                assert api.finish(app_id).status_code == 200
            print(
                f"rotation to delivery, {name:<12} n={len(ms)} p50={statistics.median(ms):.1f}ms "
                f"p99={percentile(ms, 99):.1f}ms max={max(ms):.1f}ms"
            )
            print(f"RATIO {'delivery p99, ' + name:<40} {percentile(ms, 99) / 1000:.3f} of the 1 s target")


def webhook_apps(api, name, count, url):
    """`count` new apps, each with a webhook destination at `url`; their create answers."""
    apps = []
    for i in range(count):
        created = api.create_app(f"{name}-{i}")
        api.set_destination(created["app"]["id"], {"kind": "webhook", "url": url})
        apps.append(created)
    return apps


def faults(args):
    with workspace("rekey-bench-kill-") as (work, stops):
        receiver = Receiver()
        stops.append(receiver.stop)
        server = start_server(work, stops)
        api = Api(server)
        apps = webhook_apps(api, "fault", args.apps, receiver.url)

        lock = threading.Lock()
        state = {"done": 0, "kills": 0, "retries": 0}
        up = threading.Event()
        up.set()
        stop = threading.Event()

        def retrying(call):
            """Calls until the server answers (it is down between a kill and its restart)."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                up.wait(timeout=1)
                try:
                    res = call()
                    if res.status_code < 500:
                        return res
                except requests.RequestException:
                    pass
                with lock:
                    state["retries"] += 1
                time.sleep(0.05)
            raise RuntimeError("the server did not answer for 60 s")

        def worker(my_apps):
            while True:
                for created in my_apps:
                    app_id = created["app"]["id"]
                    with lock:
                        if state["done"] >= args.rotations:
                            return
                    res = retrying(lambda: api.rotate(app_id))
                    # 409: an earlier attempt committed but its answer was lost to a kill.
                    assert res.status_code in (200, 409), res.text
                    with lock:
                        state["done"] += 1
                    res = retrying(lambda: api.finish(app_id))
                    assert res.status_code == 200, res.text

        def killer():
            rng = random.Random(args.seed)
            try:
                while not stop.wait(rng.uniform(args.kill_after / 4, args.kill_after)):
                    up.clear()
                    server.kill9()
                    with lock:
                        state["kills"] += 1
                    server.start(**QUIET)
                    up.set()
            finally:
                up.set()

        t0 = time.monotonic()
        with ThreadPoolExecutor(5) as pool:
            kill_future = pool.submit(killer)
            workers = [pool.submit(worker, apps[k::4]) for k in range(4)]
            try:
                for w in workers:
                    w.result()  # re-raises a worker's failure
            finally:
                stop.set()
            kill_future.result()
        elapsed = time.monotonic() - t0
        if state["done"] < args.rotations:
            fail(f"only {state['done']} of {args.rotations} rotations were made")

        # Let the outbox drain, then compare what the database holds with what arrived.
        api.wait_until_delivered(120)
        time.sleep(0.5)
        with receiver.lock:
            bodies = [b for (_, _, b) in receiver.received]
        delivered = {}  # client id -> set of secrets that arrived
        for b in bodies:
            p = b.get("payload", {}).get("applicationOAuthClientNewSecret")
            if p:
                delivered.setdefault(p["clientId"], set()).add(p["newClientSecret"])
        lost = unexpected = no_valid = rotated_total = 0
        for created in apps:
            client_id = created["app"]["clientId"]
            items = api.secrets(created["app"]["id"])
            got = set(delivered.get(client_id, set()))
            # Every secret but the one the app was created with came from a rotation; each
            # must have arrived. Secrets are matched by their hint (last 4 characters), each
            # delivered secret used once, so two secrets with one hint need two arrivals.
            rotated = [s for s in items if s["id"] != created["secret"]["id"]]
            rotated_total += len(rotated)
            current_secret = None
            for s in rotated:
                match = next((x for x in sorted(got) if x.endswith(s["hint"])), None)
                if match is None:
                    lost += 1
                    continue
                got.discard(match)
                if s["state"] == "current":
                    current_secret = match
            unexpected += len(got)
            if not any(s["state"] == "current" and s["id"] == created["secret"]["id"] for s in items):
                # The current secret came from a rotation: it must get a token.
                ok = current_secret is not None and requests.post(
                    server.base + "/oauth2/token", data={"grant_type": "client_credentials"},
                    auth=(client_id, current_secret), timeout=10,
                ).status_code == 200
            else:
                ok = requests.post(
                    server.base + "/oauth2/token", data={"grant_type": "client_credentials"},
                    auth=(client_id, created["clientSecret"]), timeout=10,
                ).status_code == 200
            no_valid += 0 if ok else 1
        print(
            f"kill -9 fault run: rotations={state['done']} committed_rotation_secrets={rotated_total} "
            f"kills={state['kills']} retries={state['retries']} notifications_received={len(bodies)} "
            f"lost={lost} unexpected={unexpected} apps_without_valid_secret={no_valid} seconds={elapsed:.0f}"
        )
        if lost or unexpected or no_valid:
            fail("the fault run lost notifications or left an app without a valid secret")


def outage(args):
    with workspace("rekey-bench-outage-") as (work, stops):
        receiver = Receiver()
        port = receiver.server_address[1]
        server = start_server(work, stops)
        api = Api(server)
        apps = [created["app"]["id"] for created in webhook_apps(api, "outage", args.apps, receiver.url)]
        receiver.stop()

        # Rotations spread over the outage, so deliveries sit at every stage of their backoff.
        rotations = 0
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            for app_id in apps:
                assert api.rotate(app_id).status_code == 200
                assert api.finish(app_id).status_code == 200
                rotations += 1
            time.sleep(max(0.0, min(args.seconds / 4, args.seconds - (time.monotonic() - start))))
        receiver = Receiver(port)
        stops.append(receiver.stop)
        back = time.monotonic()
        unique, last = 0, back
        while time.monotonic() < back + args.wait:
            with receiver.lock:
                unique = len({wid for (_, wid, _) in receiver.received})
                last = max((t for (t, _, _) in receiver.received), default=back)
            if unique >= rotations:
                break
            time.sleep(0.2)
        print(
            f"destination down {args.seconds:.0f} s: rotations={rotations} delivered={unique} "
            f"lost={rotations - unique} last_arrival={last - back:.1f} s after the receiver was back"
        )
        if unique < rotations:
            fail(f"{rotations - unique} notifications had not arrived {args.wait:.0f} s later")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="scenario", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--apps", type=int, default=4000)
    t.add_argument("--duration", type=int, default=5)
    t.add_argument("--connections", type=int, default=16)
    t.set_defaults(run=throughput)
    lat = sub.add_parser("latency")
    lat.add_argument("--rotations", type=int, default=100)
    lat.set_defaults(run=latency)
    f = sub.add_parser("faults")
    f.add_argument("--apps", type=int, default=100)
    f.add_argument("--rotations", type=int, default=1000)
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--kill-after", type=float, default=1.5,
                   help="longest time between kills, in seconds (the shortest is a quarter)")
    f.set_defaults(run=faults)
    o = sub.add_parser("outage")
    o.add_argument("--seconds", type=float, default=120, help="how long the receiver is down")
    o.add_argument("--apps", type=int, default=20)
    o.add_argument("--wait", type=float, default=900, help="longest wait for the stragglers")
    o.set_defaults(run=outage)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

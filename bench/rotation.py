"""Rotation scenarios of the benchmark harness (SPEC 12), run by bench/run.sh:

  throughput  rotations/s on distinct apps with the file destination, driven by wrk
  latency     rotation-to-delivery time to an SQS queue (moto) and to a local webhook
  faults      kill -9 at random moments during rotations with webhook delivery; then
              counts notifications lost and apps left without a valid secret
  outage      the webhook receiver down for a while during rotations (default retry
              settings); then counts what arrived once it is back, and when

Each prints `RESULT`/`RATIO`-style lines for the harness. The server is the release binary
named by $REKEY_BIN, started on 127.0.0.1 through the test suite's fixtures (conftest.py).
"""

import argparse
import http.server
import json
import os
import random
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


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wrk_result(out):
    for line in out.splitlines():
        if line.startswith("RESULT"):
            return dict(kv.split("=") for kv in line.split()[1:])
    raise RuntimeError("wrk printed no RESULT line:\n" + out)


def throughput(args):
    work = Path(tempfile.mkdtemp(prefix="rekey-bench-rot-"))
    server = new_server(work)
    server.start(**QUIET)
    pin(server.proc.pid, 0)
    api = Api(server)
    os.makedirs(server.spool_root, exist_ok=True)

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
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    r = wrk_result(out)
    # Only answered rotations count (a 409 would mean the file ran out of fresh apps).
    rotations = int(r["requests"]) - int(r["errors"])
    # Every rotation's notification lands in the spool; wait for the last one.
    spool = Path(server.spool_root) / "rot"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and count_files(spool) < rotations:
        time.sleep(0.1)
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    delivered = count_files(spool)
    server.stop()
    rps = rotations / (int(r["duration_us"]) / 1e6)
    print(
        f"rotation file destination    c={args.connections} rps={rps:.0f} "
        f"p50={int(r['p50_us']) / 1000:.2f}ms p99={int(r['p99_us']) / 1000:.2f}ms "
        f"p99.9={int(r['p999_us']) / 1000:.2f}ms cpu/rotation={cpu / max(rotations, 1) * 1e6:.0f}us "
        f"errors={r['errors']} delivered={delivered} (wrk counted {rotations}; requests still "
        f"in flight when wrk stopped also commit and deliver)"
    )
    print(f"RATIO {'rotations/s (SQLite, distinct apps)':<40} {rps / 200:.2f} of the 200/s target")


def count_files(d):
    try:
        return sum(1 for n in os.listdir(d) if n.endswith(".json"))
    except FileNotFoundError:
        return 0


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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

    def wait_for(self, count, timeout=10):
        with self.lock:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return len(self.received) >= count


def latency(args):
    work = Path(tempfile.mkdtemp(prefix="rekey-bench-lat-"))
    moto_port = free_port()
    moto = start_moto(moto_port, work / "moto.log")
    endpoint = f"http://127.0.0.1:{moto_port}"
    receiver = Receiver()
    server = new_server(work)
    try:
        server.start(**QUIET, **AWS_TEST_ENV)
        api = Api(server)
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        queue = sqs.create_queue(QueueName="rekey-bench")["QueueUrl"]
        sqs_app = api.create_app("latency-sqs")["app"]["id"]
        api.set_destination(sqs_app, {"kind": "sqs", "queueUrl": queue, "region": "us-east-1",
                                      "endpointUrl": endpoint})
        hook_app = api.create_app("latency-webhook")["app"]["id"]
        api.set_destination(hook_app, {"kind": "webhook", "url": receiver.url})

        def one_sqs():
            t0 = time.monotonic()
            assert api.rotate(sqs_app).status_code == 200
            while True:
                got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, WaitTimeSeconds=2)
                if got.get("Messages"):
                    elapsed = time.monotonic() - t0
                    m = got["Messages"][0]
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                    return elapsed

        def one_webhook(n):
            t0 = time.monotonic()
            assert api.rotate(hook_app).status_code == 200
            assert receiver.wait_for(n), "webhook notification never arrived"
            return receiver.received[n - 1][0] - t0

        results = {}
        for name, one in (("sqs (moto)", lambda i: one_sqs()), ("webhook", lambda i: one_webhook(i + 1))):
            times = []
            for i in range(args.rotations):
                times.append(one(i))
                assert api.finish(sqs_app if name.startswith("sqs") else hook_app).status_code == 200
            results[name] = times
        for name, times in results.items():
            ms = [t * 1000 for t in times]
            print(
                f"rotation to delivery, {name:<12} n={len(ms)} p50={statistics.median(ms):.1f}ms "
                f"p99={percentile(ms, 99):.1f}ms max={max(ms):.1f}ms"
            )
            print(f"RATIO {'delivery p99, ' + name:<40} {percentile(ms, 99) / 1000:.3f} of the 1 s target")
    finally:
        server.stop()
        moto.kill()
        receiver.shutdown()


def faults(args):
    work = Path(tempfile.mkdtemp(prefix="rekey-bench-kill-"))
    receiver = Receiver()
    server = new_server(work)
    server.start(**QUIET)
    api = Api(server)
    apps = []
    for i in range(args.apps):
        created = api.create_app(f"fault-{i}")
        api.set_destination(created["app"]["id"], {"kind": "webhook", "url": receiver.url})
        apps.append(created["app"])

    lock = threading.Lock()
    state = {"done": 0, "kills": 0, "retries": 0}
    up = threading.Event()
    up.set()
    stop = threading.Event()

    def retrying(call):
        """Calls until the server answers (it may be down between a kill and a restart)."""
        while True:
            up.wait()
            try:
                res = call()
                if res.status_code < 500:
                    return res
            except requests.RequestException:
                pass
            with lock:
                state["retries"] += 1
            time.sleep(0.05)

    def worker(my_apps):
        while not stop.is_set():
            for app in my_apps:
                with lock:
                    if state["done"] >= args.rotations:
                        return
                res = retrying(lambda: api.rotate(app["id"]))
                # 409: an earlier attempt committed but its answer was lost to a kill.
                assert res.status_code in (200, 409), res.text
                with lock:
                    state["done"] += 1
                res = retrying(lambda: api.finish(app["id"]))
                assert res.status_code == 200, res.text

    def killer():
        rng = random.Random(args.seed)
        while not stop.is_set():
            time.sleep(rng.uniform(args.kill_after / 4, args.kill_after))
            if stop.is_set():
                return
            up.clear()
            server.kill9()
            with lock:
                state["kills"] += 1
            server.start(**QUIET)
            up.set()

    workers = [threading.Thread(target=worker, args=(apps[k::4],)) for k in range(4)]
    kill_thread = threading.Thread(target=killer)
    t0 = time.monotonic()
    for t in workers + [kill_thread]:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    kill_thread.join()
    elapsed = time.monotonic() - t0

    # Let the outbox drain, then compare what the database holds with what arrived.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and api.pending_deliveries() > 0:
        time.sleep(0.2)
    time.sleep(0.5)
    with receiver.lock:
        bodies = [b for (_, _, b) in receiver.received]
    delivered = {}  # client id -> {hint: secret}
    for b in bodies:
        p = b.get("payload", {}).get("applicationOAuthClientNewSecret")
        if p:
            delivered.setdefault(p["clientId"], {})[p["newClientSecret"][-4:]] = p["newClientSecret"]
    lost = 0
    no_valid = 0
    rotation_secrets = 0
    for app in apps:
        items = api.secrets(app["id"])
        got = delivered.get(app["clientId"], {})
        # Every secret but the one the app was created with came from a rotation.
        first = min(items, key=lambda s: s["createdAt"])
        rotated = [s for s in items if s is not first]
        rotation_secrets += len(rotated)
        lost += sum(1 for s in rotated if s["hint"] not in got)
        current = [s for s in items if s["state"] == "current"]
        secret = got.get(current[0]["hint"]) if current else None
        ok = secret is not None and requests.post(
            server.base + "/oauth2/token",
            data={"grant_type": "client_credentials"}, auth=(app["clientId"], secret), timeout=10,
        ).status_code == 200
        no_valid += 0 if ok else 1
    server.stop()
    receiver.shutdown()
    print(
        f"kill -9 fault run: rotations={state['done']} committed_rotation_secrets={rotation_secrets} "
        f"kills={state['kills']} retries={state['retries']} notifications_received={len(bodies)} "
        f"lost={lost} apps_without_valid_secret={no_valid} seconds={elapsed:.0f}"
    )
    if lost or no_valid:
        sys.exit(1)


def outage(args):
    work = Path(tempfile.mkdtemp(prefix="rekey-bench-outage-"))
    receiver = Receiver()
    port = receiver.server_address[1]
    server = new_server(work)
    server.start(**QUIET)
    api = Api(server)
    apps = []
    for i in range(args.apps):
        created = api.create_app(f"outage-{i}")
        api.set_destination(created["app"]["id"], {"kind": "webhook", "url": receiver.url})
        apps.append(created["app"]["id"])
    receiver.shutdown()
    receiver.server_close()

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
    back = time.monotonic()
    deadline = back + args.wait
    unique = 0
    while time.monotonic() < deadline:
        with receiver.lock:
            unique = len({wid for (_, wid, _) in receiver.received})
            last = max((t for (t, _, _) in receiver.received), default=back)
        if unique >= rotations:
            break
        time.sleep(0.2)
    server.stop()
    receiver.shutdown()
    print(
        f"destination down {args.seconds:.0f} s: rotations={rotations} delivered={unique} "
        f"lost={rotations - unique} last_arrival={last - back:.1f} s after the receiver was back"
    )
    if unique < rotations:
        sys.exit(1)


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

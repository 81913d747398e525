"""`/metrics` as Prometheus reads it: scraped from the real binary on its own listener and
parsed with the official Python client's text parser; each counter must move with what
the test does, and no label may carry a client id."""

import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import FAST_DELIVERY_ENV, free_port, new_server


def scrape(url):
    res = requests.get(url, timeout=5)
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(res.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(url, check, timeout=20):
    """Scrapes until `check(samples)` holds (database gauges are read every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError("metrics never showed the expected values")
        time.sleep(0.5)


def token(srv, cid, secret):
    return requests.post(srv.base + "/auth/o2/token", timeout=5, data={
        "grant_type": "client_credentials", "client_id": cid, "client_secret": secret,
        "scope": "read"})


def test_metrics_parse_and_move_with_what_the_server_does(tmp_path):
    srv = new_server(tmp_path)
    metrics_port = free_port()
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    srv.start(
        REKEY_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
        REKEY_AUTH_FAILURES_PER_CLIENT="3",
        REKEY_DELIVERY_MAX_ATTEMPTS="2",
        REKEY_LAST_USE_FLUSH_SECONDS="1",
        RUST_LOG="info",
        **FAST_DELIVERY_ENV,
    )
    try:
        # Not on the public listener.
        assert requests.get(srv.base + "/metrics", timeout=5).status_code == 404

        before = scrape(url)
        assert value(before, "rekey_build_info", version=srv.cli("--version").split()[-1]) == 1

        created = srv.create_app("read")
        cid, secret = created["app"]["clientId"], created["clientSecret"]
        assert token(srv, cid, secret).status_code == 200
        assert token(srv, cid, secret).status_code == 200
        for _ in range(2):
            assert token(srv, cid, "wrong-" + secret).status_code == 401
        # The third failure for this client id reaches its budget of 3.
        assert token(srv, cid, "wrong-" + secret).status_code == 429
        # A valid secret still passes, and it is a cache hit now.
        assert token(srv, cid, secret).status_code == 200

        # A rotation through the native API with a file destination: delivered.
        app_path = f"/api/v1/orgs/{srv.org_id}/apps/{created['app']['id']}"
        res = srv.api("PUT", app_path + "/destinations/APPLICATION_OAUTH_CLIENT_NEW_SECRET",
                      json={"kind": "file", "directory": "metrics"})
        assert res.status_code == 200, res.text
        res = srv.api("POST", app_path + "/secrets/rotate", json={})
        assert res.status_code == 200, res.text

        # A second app whose webhook never answers: its notification dies.
        dead = srv.create_app("read")
        dead_path = f"/api/v1/orgs/{srv.org_id}/apps/{dead['app']['id']}"
        res = srv.api("PUT", dead_path + "/destinations/APPLICATION_OAUTH_CLIENT_NEW_SECRET",
                      json={"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook"})
        assert res.status_code == 200, res.text
        assert srv.api("POST", dead_path + "/secrets/rotate", json={}).status_code == 200

        # An app whose secrets live 10 days: its current secret expires within 30 days.
        res = srv.api("POST", f"/api/v1/orgs/{srv.org_id}/apps",
                      json={"name": "short-lived", "secretLifetimeSeconds": 10 * 86400})
        assert res.status_code == 201, res.text

        # An app's own token may not manage apps: refused by the policy.
        app_token = token(srv, cid, secret).json()["access_token"]
        res = requests.post(srv.base + f"/api/v1/orgs/{srv.org_id}/apps", json={"name": "x"},
                            headers={"Authorization": "Bearer " + app_token}, timeout=5)
        assert res.status_code == 403, res.text

        after = wait_for(url, lambda s: value(s, "rekey_deliveries_dead") == 1
                         and value(s, "rekey_previous_secrets_valid", last_use="1h") == 1
                         and value(s, "rekey_delivery_attempts_total",
                                   sink="file", outcome="delivered") >= 1)
    finally:
        srv.stop()

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("rekey_token_requests_total", dialect="lwa", outcome="issued", error="none") == 4
    assert moved("rekey_token_requests_total", dialect="lwa", outcome="refused",
                 error="invalid_client") == 2
    assert moved("rekey_token_requests_total", dialect="lwa", outcome="refused",
                 error="slow_down") == 1
    assert moved("rekey_token_request_duration_seconds_count", dialect="lwa") == 7
    assert value(after, "rekey_token_request_duration_seconds_bucket", dialect="lwa",
                 le="+Inf") == value(after, "rekey_token_request_duration_seconds_count",
                                     dialect="lwa")
    assert moved("rekey_throttled_requests_total") == 1
    assert moved("rekey_client_cache_lookups_total", result="hit") >= 1
    assert value(after, "rekey_client_cache_in_service") == 1
    assert moved("rekey_secret_changes_total", action="rotate", dialect="native",
                 actor="user") == 2
    assert moved("rekey_delivery_attempts_total", sink="webhook", outcome="failed") == 1
    assert moved("rekey_delivery_attempts_total", sink="webhook", outcome="dead") == 1
    assert moved("rekey_refused_actions_total", dialect="native") == 1
    # Only the short-lived app's secret expires within 30 days, and none within 7. The first
    # app's previous secret was used (its token requests) and is still valid; the second's
    # never was.
    assert value(after, "rekey_current_secrets_expiring", within="30d") == 1
    assert value(after, "rekey_current_secrets_expiring", within="7d") == 0
    assert value(after, "rekey_previous_secrets_valid", last_use="never") == 1
    assert value(after, "rekey_outbox_pending") == 0
    assert value(after, "rekey_outbox_oldest_pending_age_seconds") == 0
    assert value(after, "rekey_http_connections_open") >= 0

    # Labels are bounded: no client id, org or app id in any of them.
    for (_, labels) in after:
        for (_, v) in labels:
            assert v not in (cid, dead["app"]["clientId"], srv.org_id, created["app"]["id"])

    # The refusal has its log line, naming the caller.
    log = open(srv.log_path, encoding="utf-8").read()
    refusals = [l for l in log.splitlines() if "refused by the policy" in l]
    assert refusals and f"actor=app:{created['app']['id']}" in refusals[0], log[-3000:]
    assert "route=/api/v1/orgs/{org_id}/apps" in refusals[0]


def test_metrics_are_off_unless_a_listener_is_set(tmp_path):
    srv = new_server(tmp_path)
    srv.start()
    try:
        assert requests.get(srv.base + "/metrics", timeout=5).status_code == 404
    finally:
        srv.stop()

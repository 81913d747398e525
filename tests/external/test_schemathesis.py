"""Schema-driven testing of the native API from the committed openapi.json, with
schemathesis (a tool this project did not write): no 5xx, and every response matches the
schema and its content type. Runs against its own server, since it creates, changes and
deletes whatever it finds."""

import os
import subprocess
import sys

import requests

from conftest import new_server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


DIALECTS = os.path.join(REPO, "docs", "dialects", "openapi")


def schemathesis(tmp_path, schema, url, *args, parameters=None, examples=200):
    """Runs schemathesis on `schema` against `url`: no 5xx, and every response in the
    schema's shape and content type."""
    config = tmp_path / f"schemathesis-{os.path.basename(schema)}.toml"
    config.write_text("[parameters]\n" + "".join(
        f'"{k}" = "{v}"\n' for k, v in (parameters or {}).items()))
    binary = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    out = subprocess.run(
        [
            binary, "--config-file", str(config), "run", schema, "--url", url, *args,
            "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
            # One worker: schemathesis's threads meet a CPython 3.11.7 bug in concurrent
            # `ast.parse` ("AST constructor recursion depth mismatch") now and then.
            "--max-examples", str(examples), "--seed", "1", "--workers", "1",
            "--report-dir", str(tmp_path / "report"),
        ],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-6000:]
    return out.stdout


def test_the_native_api_holds_its_schema_under_generated_requests(tmp_path):
    server = new_server(tmp_path)
    server.start()
    try:
        token = server.access_token()
        # Aim the generated requests at the real org, so they get past authorization.
        schemathesis(tmp_path, os.path.join(REPO, "openapi.json"), server.base,
                     "-H", f"Authorization: Bearer {token}",
                     parameters={"path.org_id": server.org_id})
        # The served document is the file that was tested.
        served = requests.get(server.base + "/api/v1/openapi.json", timeout=5).text
        assert served == open(os.path.join(REPO, "openapi.json")).read()
    finally:
        server.stop()


def test_the_csp_paths_hold_their_schema_under_generated_requests(tmp_path):
    """CSP's OAuth-app paths as an org owner of the real org (so that requests get past
    authorization), from the hand-written document of the dialects."""
    server = new_server(tmp_path)
    server.start()
    try:
        created = server.create_app("read")
        stdout = schemathesis(
            tmp_path, os.path.join(DIALECTS, "csp-and-oauth.yaml"), server.base,
            "-H", f"Authorization: Bearer {server.access_token()}",
            "--include-path-regex", "/orgs/",
            parameters={"path.orgId": server.org_id,
                        "path.oauthAppId": created["app"]["clientId"]})
        assert "/oauth-apps/{oauthAppId}/secret" in stdout, stdout[-3000:]
    finally:
        server.stop()


def test_the_token_paths_hold_their_schema_under_generated_requests(tmp_path):
    """Every token path and introspection and revocation, with generated form bodies and no
    other credentials: RFC 6749 error bodies, never a 5xx."""
    server = new_server(tmp_path)
    server.start()
    try:
        stdout = schemathesis(
            tmp_path, os.path.join(DIALECTS, "csp-and-oauth.yaml"), server.base,
            "--exclude-path-regex", "/orgs/")
        assert "/oauth2/introspect" in stdout, stdout[-3000:]
    finally:
        server.stop()


def test_the_spapi_path_holds_amazons_model(tmp_path):
    """The SP-API rotation path against Amazon's own published model of it (Swagger 2.0,
    copied unchanged from the Selling Partner API models), with a real app's token."""
    server = new_server(tmp_path)
    server.start()
    try:
        created = server.create_app("sellingpartnerapi::client_credential:rotation")
        res = requests.post(server.base + "/auth/o2/token", data={
            "grant_type": "client_credentials", "client_id": created["app"]["clientId"],
            "client_secret": created["clientSecret"],
            "scope": "sellingpartnerapi::client_credential:rotation"}, timeout=5)
        token = res.json()["access_token"]
        stdout = schemathesis(
            tmp_path, os.path.join(DIALECTS, "spapi-application-management-2023-11-30.json"),
            server.base, "-H", f"x-amz-access-token: {token}")
        assert "clientSecret" in stdout, stdout[-3000:]
    finally:
        server.stop()

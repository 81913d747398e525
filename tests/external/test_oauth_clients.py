"""Standard OAuth 2.0 and JWT libraries that Rekey did not write, against a real server."""

import json
import os
import subprocess

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session as OAuthlibSession


def metadata(server):
    res = requests.get(server.base + "/.well-known/oauth-authorization-server", timeout=5)
    assert res.status_code == 200
    return res.json()


def verify(server, token):
    """Verifies the access token with PyJWT, using only the published JWKS."""
    meta = metadata(server)
    signing_key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token)
    return jwt.decode(token, signing_key.key, algorithms=["EdDSA"], issuer=meta["issuer"])


def test_authlib_gets_a_token_using_only_the_server_metadata(server, client_app):
    client_id, client_secret, _ = client_app
    meta = metadata(server)
    assert "client_credentials" in meta["grant_types_supported"]
    for method in meta["token_endpoint_auth_methods_supported"]:
        session = OAuth2Session(client_id, client_secret, token_endpoint_auth_method=method)
        token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        assert token["token_type"].lower() == "bearer"
        claims = verify(server, token["access_token"])
        assert claims["client_id"] == client_id
        assert claims["scope"] == "sellingpartnerapi::client_credential:rotation read"


def test_requests_oauthlib_backend_client_gets_a_scoped_token(server, client_app):
    client_id, client_secret, _ = client_app
    meta = metadata(server)
    # oauthlib insists on https; this test server listens on loopback only.
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    session = OAuthlibSession(client=BackendApplicationClient(client_id=client_id))
    token = session.fetch_token(
        token_url=meta["token_endpoint"],
        client_id=client_id,
        client_secret=client_secret,
        scope=["read"],
    )
    assert token["scope"] == ["read"]
    assert verify(server, token["access_token"])["scope"] == "read"


def test_authlib_sees_an_rfc_6749_error_for_a_wrong_secret(server, client_app):
    client_id, _, _ = client_app
    session = OAuth2Session(client_id, "rks_wrong", token_endpoint_auth_method="client_secret_basic")
    try:
        session.fetch_token(metadata(server)["token_endpoint"], grant_type="client_credentials")
    except Exception as e:  # authlib raises OAuthError with the server's error code
        assert getattr(e, "error", None) == "invalid_client"
    else:
        raise AssertionError("a wrong secret got a token")


def test_lwa_style_token_request_then_the_cli_lists_secret_metadata_only(server, client_app):
    client_id, client_secret, created = client_app
    # As an SP-API SDK does it: form body, scope not URL-encoded.
    body = (
        "grant_type=client_credentials&scope=sellingpartnerapi::client_credential:rotation"
        f"&client_id={client_id}&client_secret={client_secret}"
    )
    res = requests.post(
        server.base + "/auth/o2/token",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert res.status_code == 200, res.text
    assert res.headers["Content-Type"] == "application/json"
    verify(server, res.json()["access_token"])
    out = server.cli(
        "secrets", "list", created["app"]["id"], "--output", "json",
        env_extra={"REKEY_API_TOKEN": server.api_token},
    )
    secrets = json.loads(out)["items"]
    assert [s["state"] for s in secrets] == ["current"]
    assert client_secret not in out


def test_the_server_log_never_holds_a_secret(server, client_app):
    client_id, client_secret, _ = client_app
    OAuth2Session(client_id, client_secret).fetch_token(
        metadata(server)["token_endpoint"], grant_type="client_credentials"
    )
    requests.post(
        server.base + "/csp/gateway/am/api/auth/api-tokens/authorize?refresh_token=" + server.api_token,
        timeout=5,
    )
    # Credentials in the wrong fields, and a client id that would forge a log line.
    token_url = metadata(server)["token_endpoint"]
    for cid, secret in [(client_secret, client_id), ("x\nFORGED-LINE level=error", "y")]:
        res = requests.post(token_url, data={
            "grant_type": "client_credentials", "client_id": cid, "client_secret": secret,
        }, timeout=5)
        assert res.status_code in (400, 401), res.text
    # A caller's request id is not taken as Rekey's: it gets its own, and the caller's (when
    # short and printable) is logged apart from it.
    res = requests.get(server.base + "/healthz", headers={"x-request-id": "caller-id-1234"}, timeout=5)
    assert res.headers["x-request-id"] != "caller-id-1234"
    res = requests.get(server.base + "/healthz", headers={"x-request-id": "x" * 5000}, timeout=5)
    assert len(res.headers["x-request-id"]) == 36
    # Rekey writes x-client-request-id itself; a client's own copy is dropped.
    requests.get(server.base + "/healthz", headers={"x-client-request-id": "SPOOFED status=200"}, timeout=5)
    log = open(server.log_path, encoding="utf-8", errors="replace").read()
    assert "rekey is serving" in log
    assert client_secret not in log
    assert server.api_token not in log
    assert "FORGED" not in log and "SPOOFED" not in log
    assert "unknown_client_id_sha256" in log
    assert "client_request_id=caller-id-1234" in log
    assert "x" * 200 not in log


def test_healthcheck_reports_a_running_server(server):
    out = subprocess.run(
        [__import__("conftest").REKEY_BIN, "healthcheck", "--url", server.base],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0 and "healthy" in out.stdout

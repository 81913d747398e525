"""RFC 7662 introspection and RFC 7009 revocation, driven by authlib: its OAuth 2.0 client
(token, introspection and revocation requests) and its resource-server
`IntrospectTokenValidator`, neither written for Rekey."""

import json
import os

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7662 import IntrospectTokenValidator

# The test server is plain http on loopback.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"


def app_with(server, *scopes):
    created = server.create_app(*scopes)
    return created["app"]["clientId"], created["clientSecret"]


def session(client_id, secret):
    return OAuth2Session(client_id, secret, token_endpoint_auth_method="client_secret_basic")


def test_a_resource_server_sees_a_finished_rotation_and_a_revoked_token(server):
    meta = requests.get(server.base + "/.well-known/oauth-authorization-server", timeout=5).json()
    assert meta["introspection_endpoint"] == server.base + "/oauth2/introspect"
    assert meta["revocation_endpoint"] == server.base + "/oauth2/revoke"
    assert "client_secret_basic" in meta["introspection_endpoint_auth_methods_supported"]

    rs_id, rs_secret = app_with(server, "rekey:introspect")
    resource_server = session(rs_id, rs_secret)

    class Validator(IntrospectTokenValidator):
        def introspect_token(self, token_string):
            res = resource_server.introspect_token(meta["introspection_endpoint"],
                                                   token=token_string)
            res.raise_for_status()
            assert res.headers["cache-control"] == "no-store"
            return res.json()

    validator = Validator()
    client_id, secret = app_with(server, "read")
    token = session(client_id, secret).fetch_token(meta["token_endpoint"],
                                                   grant_type="client_credentials")
    claims = validator.authenticate_token(token["access_token"])
    validator.validate_token(claims, ["read"], None)
    assert claims["client_id"] == client_id and claims["token_type"] == "Bearer"
    assert claims["iss"] == meta["issuer"]

    # The app rotates and finishes: the secret that minted the token is revoked, and the
    # token, though its signature and expiry are still good, is no longer active.
    rotated = json.loads(server.cli("secrets", "rotate", client_id, "--output", "json",
                                    env_extra={"REKEY_API_TOKEN": server.api_token}))
    server.cli("secrets", "finish", client_id, env_extra={"REKEY_API_TOKEN": server.api_token})
    claims = validator.authenticate_token(token["access_token"])
    assert claims == {"active": False}
    with pytest.raises(InvalidTokenError):
        validator.validate_token(claims, [], None)

    # The app revokes a token of its new secret with authlib's client (RFC 7009).
    client = session(client_id, rotated["clientSecret"])
    token = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert validator.authenticate_token(token["access_token"])["active"] is True
    other_id, other_secret = app_with(server, "read")
    refused = session(other_id, other_secret).revoke_token(meta["revocation_endpoint"],
                                                           token=token["access_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    assert validator.authenticate_token(token["access_token"])["active"] is True
    res = client.revoke_token(meta["revocation_endpoint"], token=token["access_token"])
    assert res.status_code == 200
    assert validator.authenticate_token(token["access_token"]) == {"active": False}
    # Revoking again, or revoking garbage, is fine (RFC 7009 section 2.2).
    assert client.revoke_token(meta["revocation_endpoint"], token=token["access_token"]).status_code == 200
    assert client.revoke_token(meta["revocation_endpoint"], token="not-a-token").status_code == 200


def test_introspection_needs_the_scope_and_client_credentials(server):
    url = server.base + "/oauth2/introspect"
    client_id, secret = app_with(server, "read")
    token = session(client_id, secret).fetch_token(server.base + "/oauth2/token",
                                                   grant_type="client_credentials")
    # An app without rekey:introspect may not introspect, not even its own tokens.
    res = session(client_id, secret).introspect_token(url, token=token["access_token"])
    assert res.status_code == 400 and res.json()["error"] == "unauthorized_client"
    # Without client credentials: 401/400 invalid_client, as on the token endpoint.
    res = requests.post(url, data={"token": token["access_token"]}, timeout=5)
    assert res.json()["error"] == "invalid_client"
    res = requests.post(url, data={"token": token["access_token"]}, auth=(client_id, "wrong"),
                        timeout=5)
    assert res.status_code == 401 and res.json()["error"] == "invalid_client"
    # No token parameter: invalid_request.
    rs_id, rs_secret = app_with(server, "rekey:introspect")
    res = requests.post(url, data={}, auth=(rs_id, rs_secret), timeout=5)
    assert res.status_code == 400 and res.json()["error"] == "invalid_request"

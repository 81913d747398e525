"""RFC 8707 audiences with outside libraries: authlib's OAuth 2.0 client asks for a token
for a resource (and meets `invalid_target` for one the app may not use), and PyJWT, as a
resource server would, verifies the token against the JWKS with its own audience. The app's
audiences are set with `rekey apps update`."""

import json
import os

import jwt
import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

ORDERS = "https://orders.example/api"
BILLING = "https://billing.example/"


def test_a_resource_server_accepts_only_tokens_for_its_own_audience(server):
    meta = requests.get(server.base + "/.well-known/oauth-authorization-server", timeout=5).json()
    created = server.create_app("read")
    client_id, secret = created["app"]["clientId"], created["clientSecret"]
    auth = {"REKEY_API_TOKEN": server.api_token}
    updated = json.loads(server.cli("apps", "update", client_id, "--audience", ORDERS,
                                    "--audience", BILLING, "--output", "json", env_extra=auth))
    assert updated["audiences"] == [ORDERS, BILLING]
    assert f"audiences: {ORDERS} {BILLING} (default {ORDERS})" in server.cli(
        "apps", "show", client_id, env_extra=auth)

    client = OAuth2Session(client_id, secret, token_endpoint_auth_method="client_secret_basic")
    jwks = jwt.PyJWKClient(meta["jwks_uri"])

    def verify(token, audience):
        key = jwks.get_signing_key_from_jwt(token)
        return jwt.decode(token, key, algorithms=["EdDSA"], audience=audience,
                          issuer=meta["issuer"])

    for_billing = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials",
                                     resource=BILLING)["access_token"]
    assert verify(for_billing, BILLING)["aud"] == BILLING
    # The orders service refuses a token meant for billing.
    with pytest.raises(jwt.InvalidAudienceError):
        verify(for_billing, ORDERS)

    # Without a resource: the app's first audience.
    default = client.fetch_token(meta["token_endpoint"],
                                 grant_type="client_credentials")["access_token"]
    assert verify(default, ORDERS)["client_id"] == client_id

    with pytest.raises(OAuthError) as refused:
        client.fetch_token(meta["token_endpoint"], grant_type="client_credentials",
                           resource="https://payroll.example/")
    assert refused.value.error == "invalid_target"

    # Removing the audiences: tokens without `aud` again, which PyJWT accepts only when the
    # resource server does not ask for one.
    server.cli("apps", "update", client_id, "--no-audiences", env_extra=auth)
    plain = client.fetch_token(meta["token_endpoint"],
                               grant_type="client_credentials")["access_token"]
    with pytest.raises(jwt.MissingRequiredClaimError):
        verify(plain, ORDERS)

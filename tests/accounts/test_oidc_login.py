"""Login through the institution's OpenID Connect provider, against a real (tiny) provider.

The provider runs in a thread on a local port and speaks the authorization code flow: it redirects
back with a code, exchanges the code (checking the client secret, the redirect URI and the PKCE
verifier) for an RS256-signed ID token, serves userinfo for the access token and its public key as
JWKS. The browser is the Django test client; the provider's redirect is followed with requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from instrumentshare.accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

CLIENT_ID = "instrumentshare"
CLIENT_SECRET = "s3cret-for-the-test"
CALLBACK = "http://testserver/accounts/oidc/callback/"


@dataclass
class Provider:
    """What the provider will say about the next person to log in, and what it saw."""

    base: str = ""
    claims: dict = field(default_factory=dict)
    audience: str = CLIENT_ID
    userinfo_sub: str | None = None  # a different subject in userinfo than in the ID token
    token_endpoint_fails: bool = False
    codes: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    token_requests: list = field(default_factory=list)
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                    key_size=2048))

    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": "test-key", "alg": "RS256", "use": "sig"}]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        payload = {"iss": self.base, "aud": self.audience, "sub": self.claims["sub"], "iat": now,
                   "exp": now + 300, "nonce": nonce}
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": "test-key"})


def _handler(provider: Provider):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/authorize":
                assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
                assert query["code_challenge_method"] == "S256" and "openid" in query["scope"].split()
                code = secrets.token_urlsafe(16)
                provider.codes[code] = {"nonce": query["nonce"], "redirect_uri": query["redirect_uri"],
                                        "challenge": query["code_challenge"]}
                self.send_response(302)
                back = urlencode({"code": code, "state": query["state"]})
                self.send_header("Location", f"{query['redirect_uri']}?{back}")
                self.end_headers()
            elif url.path == "/jwks":
                self._json(200, provider.jwks())
            elif url.path == "/userinfo":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token not in provider.tokens:
                    return self._json(401, {"error": "invalid_token"})
                claims = dict(provider.tokens[token])
                if provider.userinfo_sub:
                    claims["sub"] = provider.userinfo_sub
                self._json(200, claims)
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self):  # noqa: N802
            if urlsplit(self.path).path != "/token":
                return self._json(404, {"error": "not_found"})
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            provider.token_requests.append(form)
            if provider.token_endpoint_fails:
                return self._json(500, {"error": "server_error"})
            grant = provider.codes.pop(form.get("code"), None)  # a code is good once
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if (grant is None or form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET
                    or form.get("redirect_uri") != grant["redirect_uri"] or challenge != grant["challenge"]):
                return self._json(400, {"error": "invalid_grant"})
            access_token = secrets.token_urlsafe(16)
            provider.tokens[access_token] = dict(provider.claims)
            self._json(200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 300,
                             "id_token": provider.id_token(grant["nonce"])})

    return Handler


@pytest.fixture
def provider(settings, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    state = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_OP_ISSUER = state.base
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{state.base}/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{state.base}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{state.base}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{state.base}/jwks"
    settings.OIDC_PROVIDER_NAME = "Ocean University"
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS,
                                        "instrumentshare.accounts.oidc.InstitutionBackend"]
    yield state
    server.shutdown()
    server.server_close()


def sign_in(client: Client, next_url: str = "") -> tuple[object, str]:
    """Click "Sign in with …", let the provider send the browser back, and land on the callback.
    Returns the callback's response and the callback URL (to try it again)."""
    start = client.get("/accounts/oidc/authenticate/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302
    at_provider = requests.get(start["Location"], allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302
    back = urlsplit(at_provider.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    callback = f"{back.path}?{back.query}"
    return client.get(callback), callback


def logged_in_as(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def test_the_login_page_offers_the_institution_and_a_new_person_ends_up_logged_in(world, provider, settings):
    world.org_a.credit_code = "91370200MA3C000000"
    world.org_a.save()
    settings.OIDC_ORGANIZATION_CREDIT_CODE = "91370200MA3C000000"

    provider.claims = {"sub": "u-1001", "email": "Li.Hua@ouc.example", "email_verified": True,
                       "preferred_username": "lihua", "name": "李 华"}
    client = Client(headers={"Accept-Language": "en"})
    page = client.get("/accounts/login/?next=/bookings/mine/").content.decode()
    assert "Sign in with Ocean University" in page
    assert 'href="/accounts/oidc/authenticate/?next=/bookings/mine/"' in page
    response, _callback = sign_in(client, "/bookings/mine/")
    assert response.status_code == 302 and response["Location"] == "/bookings/mine/"
    user = logged_in_as(client)
    assert (user.username, user.email, user.full_name, user.organization) == (
        "lihua", "Li.Hua@ouc.example", "李 华", world.org_a)
    assert not user.has_usable_password()
    assert client.get("/accounts/me/").status_code == 200
    # the provider got the code once, with the PKCE verifier and our secret
    [token_request] = provider.token_requests
    assert token_request["code_verifier"] and token_request["client_secret"] == CLIENT_SECRET


def test_an_existing_account_is_found_by_email_whatever_its_case(world, provider):
    provider.claims = {"sub": "u-7", "email": "RESEARCHER@example.org", "preferred_username": "someone-else"}
    client = Client()
    response, _callback = sign_in(client)
    assert response.status_code == 302 and response["Location"] == "/"
    assert logged_in_as(client) == world.researcher
    assert not User.objects.filter(username="someone-else").exists()


def test_a_taken_username_gets_a_suffix(world, provider):
    provider.claims = {"sub": "u-8", "email": "another.manager@ouc.example", "preferred_username": "manager"}
    client = Client()
    sign_in(client)
    assert logged_in_as(client).username == "manager-2"


def test_a_callback_cannot_be_used_twice(world, provider):
    provider.claims = {"sub": "u-9", "email": "researcher@example.org"}
    client = Client()
    _response, callback = sign_in(client)
    assert logged_in_as(client) == world.researcher
    stranger = Client()
    replay = stranger.get(callback)
    assert replay.status_code in (302, 400)
    assert logged_in_as(stranger) is None


@pytest.mark.parametrize("problem", ["wrong_audience", "other_subject", "unverified_email", "foreign_domain",
                                     "provider_down", "no_email"])
def test_what_the_provider_cannot_vouch_for_sends_the_person_back_to_the_login_page(world, provider, settings,
                                                                                     problem):
    provider.claims = {"sub": "u-1", "email": "researcher@example.org", "email_verified": True}
    settings.OIDC_ALLOWED_EMAIL_DOMAINS = ["example.org"]
    if problem == "wrong_audience":
        provider.audience = "another-application"
    elif problem == "other_subject":
        provider.userinfo_sub = "u-2"
    elif problem == "unverified_email":
        provider.claims["email_verified"] = False
    elif problem == "foreign_domain":
        settings.OIDC_ALLOWED_EMAIL_DOMAINS = ["ouc.example"]
    elif problem == "provider_down":
        provider.token_endpoint_fails = True
    elif problem == "no_email":
        del provider.claims["email"]
    client = Client(headers={"Accept-Language": "en"})
    response, _callback = sign_in(client)
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?institution_login=failed"
    assert logged_in_as(client) is None
    page = client.get(response["Location"]).content.decode()
    assert 'data-testid="institution-login-failed"' in page


def test_when_it_is_off_nothing_of_it_shows_and_passwords_work_as_before(world, settings):
    assert settings.OIDC_RP_CLIENT_ID == ""
    assert "instrumentshare.accounts.oidc.InstitutionBackend" not in settings.AUTHENTICATION_BACKENDS
    client = Client(headers={"Accept-Language": "en"})
    page = client.get("/accounts/login/").content.decode()
    assert "institution-login" not in page and "/accounts/oidc/" not in page
    assert client.get("/accounts/oidc/authenticate/").status_code == 404
    assert client.get("/accounts/oidc/callback/?code=x&state=y").status_code == 404
    assert client.post("/accounts/login/", {"username": "researcher", "password": PASSWORD}).status_code == 302
    assert logged_in_as(client) == world.researcher


def test_password_logins_still_work_when_it_is_on(world, provider):
    client = Client()
    assert client.post("/accounts/login/", {"username": "researcher", "password": PASSWORD}).status_code == 302
    assert logged_in_as(client) == world.researcher
    assert provider.token_requests == []  # a password login never talks to the provider

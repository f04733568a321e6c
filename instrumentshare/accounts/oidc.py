"""Optional login through the institution's OpenID Connect provider, with mozilla-django-oidc.

Off unless ``OIDC_RP_CLIENT_ID`` is set: then the backend is in ``AUTHENTICATION_BACKENDS``, the
login page offers "Sign in with <institution>", and /accounts/oidc/ answers; otherwise those URLs
are 404 and nothing else changes. The flow is the authorization code flow with PKCE, a nonce and
the state kept in the session (mozilla-django-oidc), the ID token checked against the provider's
JWKS, its audience (our client id), its expiry and, when ``OIDC_OP_ISSUER`` is set, its issuer.

Claims mapping (from the userinfo endpoint, whose ``sub`` must be the ID token's):

- ``email`` (required): the account is found by e-mail, case-insensitively. An ``email_verified``
  claim of false refuses the login; ``OIDC_ALLOWED_EMAIL_DOMAINS`` limits the domains accepted.
  Two accounts with the same e-mail refuse the login rather than pick one.
- a new account (unless ``OIDC_CREATE_USERS=0``) takes its username from ``OIDC_USERNAME_CLAIM``
  (``preferred_username``), else the e-mail's local part, reduced to the characters Django allows
  and made unique with ``-2``, ``-3``…; its full name from ``OIDC_NAME_CLAIM`` (``name``), else
  ``given_name`` + ``family_name``; its organization from ``OIDC_ORGANIZATION_CREDIT_CODE``. It has
  no password and no lab: a lab manager adds it to a lab, as for any new account.
- an existing account keeps its username and password; an empty full name is filled in.

A provider that fails (down, a refused code, a bad token) sends the browser back to the login page
with a message, never a server error.
"""

from __future__ import annotations

import logging
import re

import jwt
import requests
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from .models import Organization, User

logger = logging.getLogger(__name__)

USERNAME_CHARACTERS = re.compile(r"[^\w.@+-]")


def enabled() -> bool:
    return bool(settings.OIDC_RP_CLIENT_ID)


def provider_name() -> str:
    return settings.OIDC_PROVIDER_NAME


class InstitutionBackend(OIDCAuthenticationBackend):
    def authenticate(self, request, **kwargs):
        # Only the callback view passes a nonce (None when nonces are off); password logins never do.
        if not enabled() or request is None or "nonce" not in kwargs:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, jwt.PyJWTError, SuspiciousOperation, KeyError, ValueError) as error:
            logger.warning("institutional login refused: %s", error)
            return None

    # --- the ID token -------------------------------------------------------------------------

    def _verify_jws(self, payload, key):
        """As mozilla-django-oidc, plus what it leaves out: the audience, the issuer, required claims."""
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation("The ID token is not signed with the expected algorithm.")
        return jwt.decode(
            payload, key, algorithms=[self.OIDC_RP_SIGN_ALGO], audience=self.OIDC_RP_CLIENT_ID,
            issuer=settings.OIDC_OP_ISSUER or None, options={"require": ["exp", "iat", "sub"]}, leeway=60,
        )

    def get_userinfo(self, access_token, id_token, payload):
        claims = super().get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 5.3.2: the userinfo must be about the person the ID token names.
        if str(claims.get("sub", "")) != str(payload.get("sub")):
            raise SuspiciousOperation("The userinfo subject is not the ID token's.")
        return claims

    # --- who it is ----------------------------------------------------------------------------

    def verify_claims(self, claims) -> bool:
        email = str(claims.get("email") or "").strip()
        if "@" not in email or claims.get("email_verified") is False:
            return False
        domains = [domain.lower().lstrip("@") for domain in settings.OIDC_ALLOWED_EMAIL_DOMAINS]
        return not domains or email.rsplit("@", 1)[1].lower() in domains

    def filter_users_by_claims(self, claims):
        return User.objects.filter(email__iexact=str(claims["email"]).strip(), is_active=True)

    def get_username(self, claims) -> str:
        wanted = str(claims.get(settings.OIDC_USERNAME_CLAIM) or "") or str(claims["email"]).split("@")[0]
        base = USERNAME_CHARACTERS.sub("", wanted)[:140] or "user"
        username, number = base, 1
        while User.objects.filter(username__iexact=username).exists():
            number += 1
            username = f"{base}-{number}"
        return username

    @staticmethod
    def full_name(claims) -> str:
        name = claims.get(settings.OIDC_NAME_CLAIM) or " ".join(
            str(part) for part in (claims.get("given_name"), claims.get("family_name")) if part)
        return " ".join(str(name).split())[:100]

    def create_user(self, claims) -> User:
        from . import services

        code = settings.OIDC_ORGANIZATION_CREDIT_CODE
        organization = Organization.objects.filter(credit_code=code).first() if code else None
        return services.create_user(actor=None, username=self.get_username(claims), password=None,
                                    email=str(claims["email"]).strip(), full_name=self.full_name(claims),
                                    organization=organization)

    def update_user(self, user: User, claims) -> User:
        if not user.full_name and self.full_name(claims):
            user.full_name = self.full_name(claims)
            user.save(update_fields=["full_name"])
        return user


# --- the two URLs, present only when the login is on ---------------------------------------------


def _only_when_enabled(view_class):
    def view(request, *args, **kwargs):
        if not enabled():
            raise Http404("Institutional login is off.")
        return view_class.as_view()(request, *args, **kwargs)

    return view


authenticate = _only_when_enabled(OIDCAuthenticationRequestView)
callback = _only_when_enabled(OIDCAuthenticationCallbackView)

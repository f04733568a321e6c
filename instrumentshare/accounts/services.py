"""Every write about people, organizations, roles and tokens. Each one is audited."""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.utils import timezone

from instrumentshare.audit.services import changes, record
from instrumentshare.core import rows
from instrumentshare.core.errors import Forbidden, Invalid, NotFound, validated

from . import queries
from .models import ApiToken, Lab, Membership, Organization, OrganizationRole, User

ORGANIZATION_FIELDS = ("name_zh", "name_en", "short_name", "kind", "credit_code", "district", "address")
LAB_FIELDS = ("organization_id", "code", "name_zh", "name_en", "district", "address", "contact_email")


def _validated(instance):
    return validated(instance)


@transaction.atomic
def create_organization(*, actor, **fields) -> Organization:
    organization = _validated(Organization(**fields))
    organization.save()
    record(
        actor=actor, action="organization.created", target=organization,
        after=changes(organization, ORGANIZATION_FIELDS),
    )
    return organization


@transaction.atomic
def create_lab(*, actor, organization: Organization, **fields) -> Lab:
    lab = _validated(Lab(organization=organization, **fields))
    lab.save()
    record(actor=actor, action="lab.created", target=lab, after=changes(lab, LAB_FIELDS))
    return lab


@transaction.atomic
def create_user(
    *, actor, username: str, password: str | None, email: str = "", full_name: str = "",
    organization: Organization | None = None, is_platform_admin: bool = False,
) -> User:
    user = User(
        username=username, email=email, full_name=full_name, organization=organization,
        is_platform_admin=is_platform_admin,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    record(
        actor=actor,
        action="user.created",
        target=user,
        after={"username": username, "organization_id": organization.pk if organization else None,
               "is_platform_admin": is_platform_admin},
    )
    return user


def _forget_roles(user) -> None:
    """Drop the per-request role caches (accounts.queries) on this user object."""
    for name in ("_member_lab_ids", "_managed_lab_ids", "_finance_org_ids", "_organization_ids"):
        user.__dict__.pop(name, None)


@transaction.atomic
def set_membership(*, actor, lab: Lab, user: User, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise Invalid("invalid_role", f"Unknown role {role!r}.")
    membership, created = Membership.objects.select_for_update().get_or_create(
        lab=lab, user=user, defaults={"role": role}
    )
    if not created and membership.role == role:
        return membership
    before = None if created else {"role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    _forget_roles(user)
    record(actor=actor, action="membership.set", target=membership, before=before,
           after={"lab_id": lab.pk, "user_id": user.pk, "role": role})
    return membership


@transaction.atomic
def remove_membership(*, actor, lab: Lab, user: User) -> None:
    membership = Membership.objects.select_for_update().filter(lab=lab, user=user).first()
    if membership is None:
        return
    record(actor=actor, action="membership.removed", target=membership,
           before={"lab_id": lab.pk, "user_id": user.pk, "role": membership.role})
    membership.delete()
    _forget_roles(user)


@transaction.atomic
def grant_finance_role(*, actor, organization: Organization, user: User) -> OrganizationRole:
    role, created = OrganizationRole.objects.get_or_create(
        organization=organization, user=user, role=OrganizationRole.Role.FINANCE
    )
    _forget_roles(user)
    if created:
        record(actor=actor, action="organization_role.granted", target=role,
               after={"organization_id": organization.pk, "user_id": user.pk, "role": role.role})
    return role


# --- API tokens -----------------------------------------------------------------------------


def token_digest(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


@transaction.atomic
def create_api_token(
    *, user: User, name: str, scope: str = ApiToken.Scope.WRITE, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Make a token and return it with its plain text, which is never stored or shown again."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("invalid_name", "A token needs a name of 1 to 100 characters.")
    if scope not in ApiToken.Scope.values:
        raise Invalid("invalid_scope", f"Scope must be one of {', '.join(ApiToken.Scope.values)}.")
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("invalid_expiry", "The expiry must be in the future.")
    prefix = secrets.token_hex(4)
    plain = f"{settings.API_TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user, name=name, prefix=prefix, digest=token_digest(plain), scope=scope, expires_at=expires_at
    )
    record(actor=user, action="api_token.created", target=token,
           after={"name": name, "prefix": prefix, "scope": scope, "expires_at": expires_at})
    return token, plain


def issue_token_for_credentials(*, request, username: str, password: str, name: str = "") -> tuple[ApiToken, str]:
    user = authenticate(request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        from django.conf import settings

        minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
        raise Forbidden("locked_out", f"Too many failed logins: try again in {minutes} minutes.", status=429,
                        extra={"retry_after": minutes * 60})
    if user is None or not user.is_active:
        raise Forbidden("invalid_credentials", "Unknown username or wrong password.", status=401)
    return create_api_token(user=user, name=name or f"token {timezone.now():%Y-%m-%d %H:%M}")


@transaction.atomic
def revoke_api_token(*, user: User, token_id: int, now: datetime | None = None) -> ApiToken:
    token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user).first()
    if token is None:
        raise NotFound("not_found", "No such token.")
    if token.revoked_at is not None:
        return token  # already revoked: nothing more to do, nothing more to record
    token.revoked_at = now or timezone.now()
    token.save(update_fields=["revoked_at"])
    record(actor=user, action="api_token.revoked", target=token, after={"revoked_at": token.revoked_at})
    return token


def user_for_token(plain: str, *, now: datetime | None = None) -> tuple[User, ApiToken] | None:
    """The active user behind a token, or None. Touches last_used_at at most once a minute."""
    if not plain or len(plain) > 200:
        return None
    token = _token_with_user(token_digest(plain))
    now = now or timezone.now()
    if token is None or not token.is_active(now) or not token.user.is_active:
        return None
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token


def _token_with_user(digest: str) -> ApiToken | None:
    """The token by its digest, with its user and the user's organization, as
    ``select_related("user__organization")`` would read them; written out once (``core.rows``), as every
    API request runs it."""
    row = rows.one(_token_sql(), [digest])
    if row is None:
        return None
    token, user, organization = rows.instances(row, ApiToken, User, Organization)
    User._meta.get_field("organization").set_cached_value(user, organization)
    ApiToken._meta.get_field("user").set_cached_value(token, user)
    return token


@functools.cache
def _token_sql() -> str:
    return (f"SELECT {rows.columns(ApiToken, 't')}, {rows.columns(User, 'u')}, "  # noqa: S608 - names from models
            f"{rows.columns(Organization, 'o')} FROM accounts_apitoken t JOIN accounts_user u ON u.id = t.user_id "
            "LEFT JOIN accounts_organization o ON o.id = u.organization_id WHERE t.digest = %s "
            "ORDER BY t.created_at DESC LIMIT 1")


__all__ = [
    "create_api_token",
    "create_lab",
    "create_organization",
    "create_user",
    "grant_finance_role",
    "issue_token_for_credentials",
    "queries",
    "remove_membership",
    "revoke_api_token",
    "set_membership",
    "user_for_token",
]

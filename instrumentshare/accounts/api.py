"""People: who am I, my tokens, and getting a token for a script."""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Router, Schema, Status

from instrumentshare.accounts.ratelimit import export_throttle
from instrumentshare.core.schemas import BoundedDateTime, StrictSchema

from . import queries, services

auth_router = Router(tags=["auth"])
router = Router(tags=["me"])


class TokenRequestIn(StrictSchema):
    username: str = Field(..., min_length=1, max_length=150)
    password: str = Field(..., min_length=1, max_length=200)
    name: str = Field("", max_length=100, description="A label for the token, e.g. the script's name.")


class TokenCreateIn(StrictSchema):
    name: str = Field(..., min_length=1, max_length=100)
    scope: str = Field("write", pattern="^(read|write)$")
    expires_at: BoundedDateTime | None = None


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    scope: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(..., description="Shown once. Send it as `Authorization: Bearer <token>`.")


class OrganizationRef(Schema):
    id: int
    name_zh: str
    name_en: str
    kind: str


class MembershipOut(Schema):
    lab_id: int
    lab_code: str
    lab_name_zh: str
    lab_name_en: str
    organization_id: int
    role: str


class MeOut(Schema):
    id: int
    username: str
    full_name: str
    email: str
    preferred_language: str
    organization: OrganizationRef | None
    roles: list[str]
    memberships: list[MembershipOut]
    finance_organization_ids: list[int]


def _new_token_out(token, plain: str) -> dict:
    return {**TokenOut.from_orm(token).model_dump(), "token": plain}


@auth_router.post(
    "/token", auth=None, response={201: NewTokenOut}, summary="Exchange a username and password for a token"
)
def obtain_token(request, payload: TokenRequestIn):
    token, plain = services.issue_token_for_credentials(
        request=request, username=payload.username, password=payload.password, name=payload.name
    )
    return Status(201, _new_token_out(token, plain))


@router.get("/me", response=MeOut, summary="Who the caller is, and their roles")
def me(request):
    user = request.auth
    memberships = [
        {
            "lab_id": m.lab_id,
            "lab_code": m.lab.code,
            "lab_name_zh": m.lab.name_zh,
            "lab_name_en": m.lab.name_en,
            "organization_id": m.lab.organization_id,
            "role": m.role,
        }
        for m in queries.memberships_of(user)
    ]
    return {
        "id": user.pk,
        "username": user.username,
        "full_name": user.full_name,
        "email": user.email,
        "preferred_language": user.preferred_language,
        "organization": user.organization,
        "roles": queries.roles_of(user),
        "memberships": memberships,
        "finance_organization_ids": sorted(queries.finance_organization_ids(user)),
    }


@router.get("/me/tokens", response=list[TokenOut], summary="My API tokens (never their secret)")
def list_tokens(request):
    return list(request.auth.api_tokens.order_by("-created_at")[:200])


@router.post("/me/tokens", response={201: NewTokenOut}, summary="Create a token; its secret is shown once")
def create_token(request, payload: TokenCreateIn):
    token, plain = services.create_api_token(
        user=request.auth, name=payload.name, scope=payload.scope, expires_at=payload.expires_at
    )
    return Status(201, _new_token_out(token, plain))


@router.post("/me/tokens/{token_id}/revoke", response=TokenOut, summary="Revoke one of my tokens")
def revoke_token(request, token_id: int):
    return services.revoke_api_token(user=request.auth, token_id=token_id)


@router.get("/me/export", summary="Everything the platform holds about me, as JSON", throttle=export_throttle())
def export_my_data(request):
    from django.http import JsonResponse

    from .privacy import personal_data

    response = JsonResponse(personal_data(request.auth), json_dumps_params={"ensure_ascii": False})
    response["Content-Disposition"] = 'attachment; filename="my-instrumentshare-data.json"'
    return response

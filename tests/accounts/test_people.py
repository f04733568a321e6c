import pytest
from django.core.exceptions import ValidationError

from instrumentshare.accounts import queries, services
from instrumentshare.accounts.credit_code import check_character, is_valid_credit_code, validate_credit_code
from instrumentshare.accounts.models import Organization
from instrumentshare.audit.models import AuditEvent
from instrumentshare.core.errors import Invalid


def test_credit_code_check_character():
    body = "91370200MA3C0B0B2"  # 17 characters
    code = body + check_character(body)
    assert is_valid_credit_code(code)
    wrong = body + ("0" if code[-1] != "0" else "1")
    assert not is_valid_credit_code(wrong)
    assert not is_valid_credit_code("91370200MA3C0B0BI1")  # I is not in the alphabet
    with pytest.raises(ValidationError):
        validate_credit_code("123")


@pytest.mark.django_db
def test_an_invalid_credit_code_is_refused_by_the_service():
    with pytest.raises(Invalid, match="credit"):
        services.create_organization(actor=None, name_zh="坏公司", kind="company", credit_code="91370200000000000X")
    assert not Organization.objects.filter(name_zh="坏公司").exists()


@pytest.mark.django_db
def test_internal_or_external_follows_from_organizations(world):
    assert queries.is_internal(world.researcher, world.org_a)
    assert not queries.is_internal(world.researcher, world.org_b)
    assert not queries.is_internal(world.company_user, world.org_a)
    # joining a lab of organization B makes the researcher internal there too
    services.set_membership(actor=None, lab=world.lab_b, user=world.researcher, role="member")
    assert queries.is_internal(world.researcher, world.org_b)


@pytest.mark.django_db
def test_a_user_may_belong_to_several_labs_with_different_roles(world):
    services.set_membership(actor=world.other_manager, lab=world.lab_b, user=world.manager, role="member")
    assert queries.is_lab_manager(world.manager, world.lab_a)
    assert not queries.is_lab_manager(world.manager, world.lab_b)
    assert queries.member_lab_ids(world.manager) == {world.lab_a.pk, world.lab_b.pk}


@pytest.mark.django_db
def test_role_changes_are_audited(world):
    services.set_membership(actor=world.manager, lab=world.lab_a, user=world.researcher, role="manager")
    event = AuditEvent.objects.filter(action="membership.set").order_by("-id").first()
    assert event.actor_id == world.manager.pk
    assert event.before == {"role": "member"} and event.after["role"] == "manager"


@pytest.mark.django_db
def test_tokens_are_hashed_shown_once_and_audited(world):
    token, plain = services.create_api_token(user=world.researcher, name="logger")
    token.refresh_from_db()
    assert plain not in {token.digest, token.prefix} and token.digest == services.token_digest(plain)
    assert services.user_for_token(plain)[0] == world.researcher
    services.revoke_api_token(user=world.researcher, token_id=token.pk)
    services.revoke_api_token(user=world.researcher, token_id=token.pk)  # idempotent
    assert services.user_for_token(plain) is None
    actions = list(AuditEvent.objects.filter(target_type="accounts.apitoken").values_list("action", flat=True))
    assert actions == ["api_token.created", "api_token.revoked"]


@pytest.mark.django_db
def test_an_expired_token_does_not_authenticate(world):
    from datetime import timedelta

    from django.utils import timezone

    token, plain = services.create_api_token(user=world.researcher, name="x",
                                             expires_at=timezone.now() + timedelta(hours=1))
    assert services.user_for_token(plain, now=timezone.now() + timedelta(hours=2)) is None


@pytest.mark.django_db
def test_seed_demo_twice_duplicates_nothing():
    from django.core.management import call_command

    from instrumentshare.accounts.models import Lab, Membership, User
    from instrumentshare.audit.services import verify

    call_command("seed_demo")
    counts = (Organization.objects.count(), Lab.objects.count(), User.objects.count(), Membership.objects.count())
    call_command("seed_demo")
    assert counts == (Organization.objects.count(), Lab.objects.count(), User.objects.count(),
                      Membership.objects.count())
    assert Organization.objects.count() >= 12
    assert all(is_valid_credit_code(code) for code in Organization.objects.values_list("credit_code", flat=True))
    assert verify() is None

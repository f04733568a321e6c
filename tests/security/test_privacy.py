import datetime as dt

import pytest
from django.test import Client

from bookings import services
from instrumentshare.audit.services import seal_pending
from tests.bookings.conftest import next_weekday

pytestmark = pytest.mark.django_db


def test_a_user_downloads_what_the_platform_holds_about_them(world, api_as, instrument):
    start = next_weekday(1, 10)
    services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                            end=start + dt.timedelta(hours=1), purpose="my own project")
    response = api_as(world.researcher).get("/me/export")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    data = response.json()
    assert data["profile"]["username"] == "researcher"
    assert [b["purpose"] for b in data["bookings"]] == ["my own project"]
    assert any(e["action"] == "booking.created_confirmed" for e in data["audit_events_by_me"])
    other = api_as(world.other_researcher).get("/me/export").json()
    assert other["bookings"] == [] and "my own project" not in str(other)
    assert api_as(None).get("/me/export").status_code == 401


def test_the_audit_trail_shows_others_personal_data_only_to_the_bureau(world, api_as, instrument):
    start = next_weekday(1, 10)
    services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                            end=start + dt.timedelta(hours=1), purpose="x")
    mine = api_as(world.researcher).get("/audit/events").json()
    assert mine["count"] >= 1 and {e["actor_id"] for e in mine["items"]} == {world.researcher.pk}
    others = api_as(world.other_researcher).get("/audit/events", {"action": "booking.created_confirmed"}).json()
    assert others["count"] == 0
    everything = api_as(world.bureau).get("/audit/events", {"action": "booking.created_confirmed"}).json()
    assert everything["count"] == 1
    assert api_as(None).get("/audit/events").status_code == 401


def test_the_seal_head_is_public(world, instrument):
    seal_pending()
    head = Client().get("/api/v1/audit/head").json()
    assert head["seal_seq"] > 0 and len(head["seal_hash"]) == 64


# Every relation from one of our models to the user model is either about the person (a section of
# their export) or something they did as staff (it is in ``audit_events_by_me``). A new model that
# names a person fails here until its app exports it (accounts.extensions.personal_data_sections).
ABOUT_THE_PERSON = {
    "accounts.Membership.user": "memberships", "accounts.OrganizationRole.user": "organization_roles",
    "accounts.ApiToken.user": "api_tokens", "audit.AuditEvent.actor": "audit_events_by_me",
    "catalog.Qualification.user": "qualifications", "catalog.TrainingRequest.user": "training_requests",
    "catalog.ListingChangeRequest.requested_by": "listing_requests",
    "bookings.Booking.user": "bookings", "bookings.FeedToken.user": "feed_links", "bookings.UserCredit.user": "credit",
    "bookings.CreditEvent.user": "credit_events", "bookings.WaitlistEntry.user": "waiting_list",
    "bookings.BookingSeries.user": "booking_series",
    "usage.UsageSession.user": "usage_sessions", "usage.BillableItem.user": "billable_items",
    "usage.ServiceRecord.user": "service_records",
    "billing.BillingAccount.pi": "accounts_as_pi", "billing.AccountAuthorization.user": "account_authorizations",
    "billing.Charge.user": "charges",
    "submissions.SampleRequest.requester": "sample_requests",
    "submissions.Attachment.uploaded_by": "sample_request_files",
    "submissions.RequestEvent.actor": "sample_request_history", "submissions.Quote.decided_by": "sample_quotes",
    "oversight.InstrumentMonthUser.user": "usage_statistics", "oversight.PurchaseCheck.user": "purchase_checks",
}
AS_STAFF = {
    "catalog.Downtime.created_by", "catalog.Qualification.granted_by", "catalog.ListingChangeRequest.decided_by",
    "catalog.TrainingRequest.decided_by",
    "bookings.Booking.decided_by", "bookings.Booking.cancelled_by", "bookings.CreditEvent.actor",
    "usage.LoggerToken.created_by", "usage.ReviewFlag.resolved_by", "billing.AccountAuthorization.decided_by",
    "billing.RateCard.created_by", "billing.BillingPeriod.started_by", "billing.Charge.created_by",
    "billing.Voucher.issued_by", "billing.Payment.created_by", "oversight.NationalExport.created_by",
    "submissions.Quote.created_by",
}


def test_every_model_that_names_a_person_is_in_their_export_or_is_a_staff_action():
    from django.apps import apps
    from django.conf import settings

    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    ours = {"accounts", "audit", "catalog", "bookings", "submissions", "usage", "billing", "oversight", "portal"}
    named = {f"{model._meta.label}.{field.name}" for model in apps.get_models() if model._meta.app_label in ours
             for field in model._meta.get_fields()
             if field.is_relation and not field.auto_created and field.related_model is user_model}
    assert named - set(ABOUT_THE_PERSON) - AS_STAFF == set(), "export these, or list them as staff actions"
    assert set(ABOUT_THE_PERSON) | AS_STAFF <= named, "a listed relation is gone: update the lists"


def test_the_export_has_a_section_for_everything_about_the_person(world, api_as, instrument):
    from catalog import services as catalog_services

    catalog_services.request_training(actor=world.researcher, instrument_id=instrument.pk, message="please")
    data = api_as(world.researcher).get("/me/export").json()
    assert set(ABOUT_THE_PERSON.values()) <= set(data)
    assert [r["message"] for r in data["training_requests"]] == ["please"]
    assert data["memberships"] and data["profile"]["username"] == "researcher"

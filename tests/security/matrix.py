"""What both authorization matrices (API and pages) point at, and how each role calls.

One set of objects, built once per test module inside a transaction that is rolled back at the
end of the module (``matrix`` fixture in ``tests/security/conftest.py``); each request runs in its
own savepoint, rolled back too, so every role meets the same state whatever the others did.

Everything belongs to the researcher, lab A (managed by ``manager``) or organization A (with
``finance``); the other people of ``tests/conftest.py`` are outsiders to it:

- an instrument of lab A with a pending booking of the researcher, a weekly series of two of
  theirs (pending too), the researcher's waiting-list entry, a downtime, the researcher's
  qualification, a training request of ``other_researcher``, a billable item, service record and
  review flag of the booking, a listing change request, a logger token;
- billing: two rate cards (one used by charges, one not), lab A's cost centre, a research project
  of organization A led by the researcher (a lab A student asked to charge it), the company's payer
  account, October 2026 closed for organization A: the cost centre's invoice (the researcher's use)
  and the company's invoice (its use, half paid by an innovation voucher the bureau issued);
- oversight: organization A's national export of 2025-Q1;
- submissions: the researcher's sample request on lab A's instrument (which offers one analysis), in
  progress, with the lab's result file.

``admin`` is a Django superuser (staff): the site administrator, a platform administrator like the
bureau. It is made here rather than in the shared ``world``, which other tests count on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

from django.conf import settings
from django.db import transaction
from django.test import Client

from tests.conftest import PASSWORD, World, build_world

ROLES = ["anonymous", "logger", "researcher", "other_researcher", "manager", "other_manager", "finance",
         "other_finance", "company_user", "bureau", "admin"]
PEOPLE = ROLES[2:]


@dataclass
class Matrix:
    world: World
    ids: dict                      # path parameter -> value, or {part of the path: value} where it differs
    logger: str                    # the plain logger token of the instrument
    feed: str                      # the plain text of the researcher's private feed token
    tokens: dict = field(default_factory=dict)     # role -> plain API token
    sessions: dict = field(default_factory=dict)   # role -> session key
    clients: dict = field(default_factory=dict)    # enforce_csrf_checks -> Client

    def user(self, role: str):
        return getattr(self.world, role)

    def client(self, role: str | None = None, *, enforce_csrf_checks: bool = False) -> Client:
        """A test client with no cookies but ``role``'s session (none for anonymous and the logger).

        Two clients serve every request: each new one loads the whole middleware stack again
        (WhiteNoise indexes every static file), which costs more than the request itself.
        """
        client = self.clients.setdefault(enforce_csrf_checks, Client(enforce_csrf_checks=enforce_csrf_checks))
        client.cookies = SimpleCookie()
        if role in self.sessions:
            client.cookies[settings.SESSION_COOKIE_NAME] = self.sessions[role]
        return client

    def value(self, name: str, path: str):
        value = self.ids[name]
        if isinstance(value, dict):
            return next(v for key, v in value.items() if key in path)
        return value


def build() -> Matrix:
    world = build_world()
    from instrumentshare.accounts import services as account_services

    admin = account_services.create_user(actor=None, username="admin", password=PASSWORD,
                                         email="admin@example.org", full_name="Site Admin", organization=None)
    type(admin).objects.filter(pk=admin.pk).update(is_staff=True, is_superuser=True)
    admin.refresh_from_db()
    world.admin = admin
    ids, plain = _catalog_and_bookings(world)
    ids.update(_billing(world, ids["instrument_id"]))
    ids.update(_oversight(world))
    ids.update(_submissions(world, ids))
    matrix = Matrix(world=world, ids=ids, logger=plain["logger"], feed=plain["feed"])
    for role in PEOPLE:
        user = matrix.user(role)
        matrix.tokens[role] = account_services.create_api_token(user=user, name="matrix")[1]
        client = Client()
        client.force_login(user)
        matrix.sessions[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return matrix


def _catalog_and_bookings(world) -> tuple[dict, dict]:
    from bookings import services as booking_services
    from bookings.models import WaitlistEntry
    from bookings.services import create_feed_token
    from catalog import services as catalog_services
    from catalog.models import ListingChangeRequest
    from instrumentshare.accounts.services import create_api_token
    from tests.bookings.conftest import make_instrument, next_weekday
    from usage.models import BillableItem, ReviewFlag, ServiceRecord
    from usage.services import sessions as usage

    instrument = make_instrument(world, policy={"approval": "all"})
    start = next_weekday(1, 10)
    booking = booking_services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                              end=start + dt.timedelta(hours=1), purpose="matrix")
    series_start = next_weekday(3, 10)
    series = booking_services.create_series(user=world.researcher, instrument_id=instrument.pk, start=series_start,
                                            end=series_start + dt.timedelta(hours=1), purpose="matrix series",
                                            frequency="WEEKLY", count=2).series
    # the researcher's place in the instrument's waiting list (for their own booking's time: any entry will do)
    entry = WaitlistEntry.objects.create(user=world.researcher, instrument=instrument, start=booking.start,
                                         end=booking.end, minutes=60, purpose="matrix wait")
    logger_token, logger_plain = usage.create_logger_token(actor=world.manager, instrument_id=instrument.pk,
                                                           name="PC")
    downtime = catalog_services.add_downtime(actor=world.manager, instrument_id=instrument.pk,
                                             start=start + dt.timedelta(days=1),
                                             end=start + dt.timedelta(days=1, hours=1), kind="planned",
                                             reason="service")
    qualification = catalog_services.grant_qualification(actor=world.manager, instrument_id=instrument.pk,
                                                         user=world.researcher)
    training = catalog_services.request_training(actor=world.other_researcher, instrument_id=instrument.pk)
    item = BillableItem.objects.create(booking=booking, instrument=instrument, user=world.researcher,
                                       is_internal=True, kind="booking", charge_mode="booked", unit="hour",
                                       quantity=60, service_start=booking.start, service_end=booking.end)
    record = ServiceRecord.objects.create(item=item, instrument=instrument, user=world.researcher,
                                          is_internal=True, start=booking.start, end=booking.end, hours=1)
    flag = ReviewFlag.objects.create(instrument=instrument, booking=booking, kind="overrun")
    listing = ListingChangeRequest.objects.create(instrument=instrument, kind="unpublish", requested_by=world.manager,
                                                  justification="x" * 30)
    api_token = create_api_token(user=world.researcher, name="victim")[0]
    feed, feed_plain = create_feed_token(user=world.researcher)
    ids = {
        "booking_id": booking.pk, "series_id": series.pk, "entry_id": entry.pk, "instrument_id": instrument.pk,
        "downtime_id": downtime.pk,
        "qualification_id": qualification.pk, "training_request_id": training.pk, "flag_id": flag.pk,
        "record_id": record.pk, "request_id": listing.pk, "feed_id": feed.pk,
        "token_id": {"logger-tokens": logger_token.pk, "": api_token.pk},
        "lab_id": world.lab_a.pk, "organization_id": world.org_a.pk, "lab_code": world.lab_a.code,
        "notification_id": booking.notifications.get().pk,  # the booking's invitation
    }
    return ids, {"logger": logger_plain, "feed": feed_plain}


def _billing(world, instrument_id: int) -> dict:
    from billing import services as billing
    from billing.models import BillingPeriod, Charge, Invoice
    from billing.services import closing
    from catalog.models import Instrument
    from instrumentshare.accounts import services as account_services
    from tests.billing.conftest import MONTH, after_month, at, make_card, make_item

    instrument = Instrument.objects.get(pk=instrument_id)
    make_card(instrument)
    unused_card = make_card(instrument, valid_from=dt.date(2099, 1, 1))
    cost_centre = billing.create_account(actor=world.finance, kind="cost_centre", organization=world.org_a,
                                         lab=world.lab_a, number="CC-A", name="Lab A cost centre")
    billing.create_account(actor=None, kind="external", organization=world.company, number="EXT-C", name="Company C")
    project = billing.create_account(actor=world.finance, kind="project", organization=world.org_a, number="PRJ-A",
                                     name="Deep sea", pi=world.researcher)
    student = account_services.create_user(actor=None, username="student", password=None, organization=world.org_a)
    account_services.set_membership(actor=None, lab=world.lab_a, user=student, role="member")
    asked = billing.request_account_access(user=student, account_id=project.pk, note="thesis")
    make_item(instrument, world.researcher, start=at(5), minutes=60)
    make_item(instrument, world.company_user, start=at(7), minutes=60)
    voucher = billing.issue_voucher(actor=world.bureau, company=world.company, amount="500", share_percent="50",
                                    valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31))
    closing.close_period(actor=None, month=MONTH, now=after_month())
    invoices = {invoice.account.kind: invoice for invoice in Invoice.objects.select_related("account")}
    return {
        "account_id": project.pk, "user_id": student.pk, "authorization_id": asked.pk, "card_id": unused_card.pk,
        "charge_id": Charge.objects.get(user=world.researcher, kind=Charge.Kind.USAGE).pk,
        "period_id": BillingPeriod.objects.get(organization=world.org_a, month=MONTH).pk,
        "invoice_id": {"online-payment": invoices["external"].pk, "": invoices["cost_centre"].pk},
        "company_invoice_id": invoices["external"].pk,
        "voucher_id": voucher.pk, "cost_centre_id": cost_centre.pk, "company_id": world.company.pk,
        "month": MONTH,
    }


def _oversight(world) -> dict:
    from oversight.models import NationalExport

    export = NationalExport.objects.create(organization=world.org_a, period="2025-Q1", year=2025, quarter=1,
                                           payload={"instruments": [], "service_records": []}, digest="0" * 64)
    return {"export_id": export.pk, "key": "utilization"}


def _submissions(world, ids: dict) -> dict:
    """A sample request of the researcher's on lab A's instrument, in progress with a result file."""
    from submissions import services

    analysis = services.add_analysis(actor=world.manager, instrument_id=ids["instrument_id"], code="M",
                                     name_zh="矩阵分析", price_per_sample="10")
    request = services.create_request(user=world.researcher, instrument_id=ids["instrument_id"], sample_count=1,
                                      sample_type="matrix", sample_state="solid", analysis_ids=[analysis.pk])
    services.quote_request(actor=world.manager, request_id=request.pk, items=[services.ItemIn("M", 1, 10)],
                           valid_until=dt.date.today() + dt.timedelta(days=30))
    services.accept_quote(actor=world.researcher, request_id=request.pk)
    services.receive_samples(actor=world.manager, request_id=request.pk)
    services.start_work(actor=world.manager, request_id=request.pk)
    result = services.add_attachment(actor=world.manager, request_id=request.pk, name="r.pdf",
                                     content=b"%PDF-1.4 matrix")
    listing = ids["request_id"]
    return {"request_id": {"submissions": request.pk, "": listing}, "file_id": result.pk}


def rolled_back(call, *args, **kwargs):
    """Make one request in a savepoint and undo whatever it wrote."""
    with transaction.atomic():
        response = call(*args, **kwargs)
        transaction.set_rollback(True)
    return response

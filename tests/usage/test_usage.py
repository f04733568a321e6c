import datetime as dt

import pytest

from bookings import services
from bookings.models import Booking
from instrumentshare.accounts import services as accounts
from instrumentshare.audit.services import verify
from tests.bookings.conftest import make_instrument, next_weekday
from tests.conftest import _user, requires_postgres
from usage.charging import billable_quantity
from usage.models import BillableItem, ReviewFlag, ServiceRecord, UsageSession
from usage.services import sessions as usage
from usage.services.reconcile import reconcile

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def logger_client(world, instrument, api_as):
    from tests.conftest import ApiClient

    _token, plain = usage.create_logger_token(actor=world.manager, instrument_id=instrument.pk, name="PC")
    return ApiClient(plain)


def test_a_logger_replayed_twice_and_out_of_order_makes_one_session(world, instrument, api_as):
    logger = logger_client(world, instrument, api_as)
    start = next_weekday(1, 10)
    events = [
        {"event_id": "e2", "type": "stop", "session_id": "s1", "at": (start + dt.timedelta(hours=2)).isoformat()},
        {"event_id": "e1", "type": "start", "session_id": "s1", "at": start.isoformat(), "user": "researcher"},
    ]
    first = logger.post("/usage/events", {"events": events})
    assert first.status_code == 200
    assert [r["status"] for r in first.json()] == ["created", "created"]
    again = logger.post("/usage/events", {"events": list(reversed(events))}).json()
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    session = UsageSession.objects.get()
    assert (session.start, session.end) == (start, start + dt.timedelta(hours=2))
    assert session.user == world.researcher and session.source == "logger"


def test_the_logger_token_can_do_nothing_else_and_is_revocable(world, instrument, api_as):
    logger = logger_client(world, instrument, api_as)
    assert logger.get("/me").status_code == 401
    assert logger.get("/bookings").status_code == 401
    token_id = instrument.logger_tokens.get().pk
    assert api_as(world.other_manager).post(f"/logger-tokens/{token_id}/revoke").status_code == 404
    assert api_as(world.manager).post(f"/logger-tokens/{token_id}/revoke").status_code == 200
    response = logger.post("/usage/events", {"events": [
        {"event_id": "x", "type": "start", "session_id": "s", "at": "2026-12-01T09:00:00+08:00"}]})
    assert response.status_code == 401


def test_bad_logger_events_are_422_or_reported_per_event(world, instrument, api_as):
    logger = logger_client(world, instrument, api_as)
    assert logger.post("/usage/events", {"events": [{"event_id": "a", "type": "start", "session_id": "s"}]}
                       ).status_code == 422
    assert logger.post("/usage/events", {"events": [{"event_id": "a", "type": "start", "session_id": "s",
                                                     "at": "2026-12-01T09:00:00"}]}).status_code == 422
    results = logger.post("/usage/events", {"events": [
        {"event_id": "a", "type": "start", "session_id": "s", "at": "2026-12-01T12:00:00+08:00"},
        {"event_id": "b", "type": "stop", "session_id": "s", "at": "2026-12-01T11:00:00+08:00"},
    ]}).json()
    assert [r["status"] for r in results] == ["created", "error"]
    assert UsageSession.objects.get().end is None  # the bad stop left nothing behind


def test_check_in_opens_near_the_start_and_check_out_closes(world, instrument):
    start = next_weekday(1, 10)
    booking = services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                      end=start + dt.timedelta(hours=2), purpose="x",
                                      now=start - dt.timedelta(days=2))
    from instrumentshare.core.errors import Invalid, NotFound

    with pytest.raises(Invalid):
        usage.check_in(user=world.researcher, booking_id=booking.pk, now=start - dt.timedelta(hours=1))
    with pytest.raises(NotFound):
        usage.check_in(user=world.other_researcher, booking_id=booking.pk, now=start)
    session = usage.check_in(user=world.researcher, booking_id=booking.pk, now=start - dt.timedelta(minutes=10))
    assert usage.check_in(user=world.researcher, booking_id=booking.pk, now=start).pk == session.pk
    closed = usage.check_out(user=world.researcher, booking_id=booking.pk, now=start + dt.timedelta(minutes=90))
    assert closed.end - closed.start == dt.timedelta(minutes=100)


RULES = {"min_charge_minutes": 30, "rounding_minutes": 15, "no_show_percent": 100, "late_cancel_percent": 50}


@pytest.mark.parametrize("mode,kind,booked,used,samples,expected", [
    # booked time
    ("booked", "booking", 120, 120, 0, ("hour", 120)),   # on time
    ("booked", "booking", 120, 150, 0, ("hour", 120)),   # overrun: booked time is charged
    ("booked", "booking", 120, 50, 0, ("hour", 120)),    # early finish
    ("booked", "no_show", 120, 0, 0, ("hour", 120)),     # 100% of booked
    ("booked", "late_cancel", 120, 0, 0, ("hour", 60)),  # 50% of booked
    ("booked", "unbooked", 0, 40, 0, ("hour", 45)),      # used, rounded up to 15 min
    # used time
    ("used", "booking", 120, 120, 0, ("hour", 120)),
    ("used", "booking", 120, 151, 0, ("hour", 165)),
    ("used", "booking", 120, 10, 0, ("hour", 30)),       # minimum charge
    ("used", "no_show", 120, 0, 0, ("hour", 120)),
    ("used", "late_cancel", 120, 0, 0, ("hour", 60)),
    ("used", "unbooked", 0, 61, 0, ("hour", 75)),
    # the longer of the two
    ("longer", "booking", 120, 120, 0, ("hour", 120)),
    ("longer", "booking", 120, 170, 0, ("hour", 180)),
    ("longer", "booking", 120, 30, 0, ("hour", 120)),
    ("longer", "no_show", 60, 0, 0, ("hour", 60)),
    ("longer", "late_cancel", 60, 0, 0, ("hour", 30)),
    ("longer", "unbooked", 0, 20, 0, ("hour", 30)),
    # per sample
    ("per_sample", "booking", 120, 120, 12, ("sample", 12)),
    ("per_sample", "booking", 120, 170, 3, ("sample", 3)),
    ("per_sample", "booking", 120, 30, 0, ("sample", 0)),
    ("per_sample", "no_show", 120, 0, 0, ("use", 1)),
    ("per_sample", "late_cancel", 120, 0, 0, ("use", 1)),
    ("per_sample", "unbooked", 0, 30, 4, ("sample", 4)),
    # per use
    ("per_use", "booking", 120, 120, 0, ("use", 1)),
    ("per_use", "booking", 120, 170, 0, ("use", 1)),
    ("per_use", "booking", 120, 30, 0, ("use", 1)),
    ("per_use", "no_show", 120, 0, 0, ("use", 1)),
    ("per_use", "late_cancel", 120, 0, 0, ("use", 1)),
    ("per_use", "unbooked", 0, 30, 0, ("use", 1)),
])
def test_charge_mode_table(mode, kind, booked, used, samples, expected):
    quantity = billable_quantity(charge_mode=mode, kind=kind, booked_minutes=booked, used_minutes=used,
                                 samples=samples, **RULES)
    assert (quantity.unit, quantity.quantity) == expected


def test_no_charge_when_the_policy_waives_no_shows():
    quantity = billable_quantity(charge_mode="booked", kind="no_show", booked_minutes=120, used_minutes=0,
                                 samples=0, **{**RULES, "no_show_percent": 0})
    assert quantity.quantity == 0


def _scenario(world):
    """A past week with every case: on time, overrun, early, no-show, late cancel, unbooked use."""
    instrument = make_instrument(world, name="对账仪器", policy={"charge_mode": "longer", "min_notice_minutes": 0})
    monday = next_weekday(0, 8, weeks_ahead=-1)
    created_at = monday - dt.timedelta(days=7)
    bookings = {}
    for name, day, user in [("on_time", 0, world.researcher), ("overrun", 1, world.researcher),
                            ("early", 2, world.other_researcher), ("no_show", 3, world.researcher),
                            ("late_cancel", 4, world.company_user)]:
        start = monday + dt.timedelta(days=day, hours=2)
        bookings[name] = services.create_booking(user=user, instrument_id=instrument.pk, start=start,
                                                 end=start + dt.timedelta(hours=2), purpose=name, now=created_at)
    services.cancel_booking(actor=world.company_user, booking_id=bookings["late_cancel"].pk,
                            now=bookings["late_cancel"].start - dt.timedelta(hours=2))

    def session(ref, start, minutes, user):
        UsageSession.objects.create(instrument=instrument, user=user, source="logger", external_ref=ref,
                                    start=start, end=start + dt.timedelta(minutes=minutes))

    session("a", bookings["on_time"].start, 120, world.researcher)
    session("b", bookings["overrun"].start, 170, world.researcher)
    session("c", bookings["early"].start, 40, world.other_researcher)
    session("d", monday + dt.timedelta(days=2, hours=6), 50, world.company_user)  # unbooked
    return instrument, bookings, monday


def _items():
    return sorted((i.kind, i.unit, i.quantity, i.booked_minutes, i.used_minutes, i.booking_id, i.session_id)
                  for i in BillableItem.objects.all())


def test_reconciliation_settles_flags_and_bills_each_case_and_is_idempotent(world):
    instrument, bookings, monday = _scenario(world)
    now = monday + dt.timedelta(days=6)
    summary = reconcile(since=monday - dt.timedelta(days=1), now=now)
    assert (summary.completed, summary.no_shows) == (3, 1)
    states = {name: Booking.objects.get(pk=b.pk).state for name, b in bookings.items()}
    assert states == {"on_time": "completed", "overrun": "completed", "early": "completed",
                      "no_show": "no_show", "late_cancel": "cancelled"}
    by_booking = {i.booking_id: (i.kind, i.quantity) for i in BillableItem.objects.filter(booking__isnull=False)}
    assert by_booking == {
        bookings["on_time"].pk: ("booking", 120), bookings["overrun"].pk: ("booking", 180),
        bookings["early"].pk: ("booking", 120), bookings["no_show"].pk: ("no_show", 120),
        bookings["late_cancel"].pk: ("late_cancel", 60),
    }
    unbooked = BillableItem.objects.get(session__isnull=False)
    assert (unbooked.kind, unbooked.quantity, unbooked.is_internal) == ("unbooked", 60, False)
    flags = set(ReviewFlag.objects.values_list("kind", flat=True))
    assert flags == {"overrun", "early_finish", "no_show", "unbooked"}
    assert ServiceRecord.objects.count() == 4  # three completed bookings and the unbooked session
    assert services.credit_score(world.researcher) == 90
    first = _items()
    again = reconcile(since=monday - dt.timedelta(days=1), now=now)
    assert (again.completed, again.no_shows, again.items_created, again.items_updated) == (0, 0, 0, 0)
    assert _items() == first
    assert services.credit_score(world.researcher) == 90
    assert verify() is None


def test_service_records_say_who_used_what_for_how_long(world):
    """The same rows on either backend (PostgreSQL makes them in one INSERT … SELECT, SQLite from Python)."""
    from decimal import Decimal

    instrument, bookings, monday = _scenario(world)
    Booking.objects.filter(pk=bookings["early"].pk).update(direction="teaching")
    reconcile(since=monday - dt.timedelta(days=1), now=monday + dt.timedelta(days=6))
    rows = {(r.item.booking_id or "unbooked"): (r.user_id, r.applicant_organization_id, r.is_internal, r.direction,
                                                 r.hours, r.samples, r.start, r.end, r.way)
            for r in ServiceRecord.objects.select_related("item")}
    researcher, other, company = world.researcher, world.other_researcher, world.company_user
    on_time, overrun, early = bookings["on_time"], bookings["overrun"], bookings["early"]
    unbooked_start = monday + dt.timedelta(days=2, hours=6)
    assert rows == {
        on_time.pk: (researcher.pk, researcher.organization_id, on_time.is_internal, "research", Decimal("2.00"), 0,
                     on_time.start, on_time.end, ServiceRecord.Way.INSTRUMENT_USE),
        overrun.pk: (researcher.pk, researcher.organization_id, overrun.is_internal, "research", Decimal("2.83"), 0,
                     overrun.start, overrun.end, ServiceRecord.Way.INSTRUMENT_USE),
        early.pk: (other.pk, other.organization_id, early.is_internal, "teaching", Decimal("0.67"), 0, early.start,
                   early.end, ServiceRecord.Way.INSTRUMENT_USE),
        "unbooked": (company.pk, company.organization_id, False, "research", Decimal("0.83"), 0, unbooked_start,
                     unbooked_start + dt.timedelta(minutes=50), ServiceRecord.Way.INSTRUMENT_USE),
    }
    assert ServiceRecord.objects.filter(item__kind__in=("no_show", "late_cancel")).count() == 0


def test_a_manager_corrects_or_waives_a_flag_and_reconciliation_keeps_it(world, api_as):
    instrument, bookings, monday = _scenario(world)
    now = monday + dt.timedelta(days=6)
    reconcile(since=monday - dt.timedelta(days=1), now=now)
    overrun = ReviewFlag.objects.get(kind="overrun")
    assert api_as(world.other_manager).post(f"/usage/flags/{overrun.pk}", {"decision": "waived"}).status_code == 404
    manager = api_as(world.manager)
    assert manager.post(f"/usage/flags/{overrun.pk}", {"decision": "corrected"}).json()["code"] == "reason_required"
    done = manager.post(f"/usage/flags/{overrun.pk}", {"decision": "corrected", "reason": "logger clock drift",
                                                       "minutes": 135})
    assert done.status_code == 200 and done.json()["state"] == "corrected"
    reconcile(since=monday - dt.timedelta(days=1), now=now)
    item = BillableItem.objects.get(booking=bookings["overrun"])
    assert (item.quantity, item.corrected) == (135, True)
    assert len(manager.get("/usage/flags").json()) == 3


def test_a_session_left_open_is_closed_at_the_limit_and_flagged(world, instrument, settings):
    settings.USAGE_OPEN_SESSION_LIMIT_HOURS = 12
    start = dt.datetime(2026, 11, 2, 1, tzinfo=UTC)
    UsageSession.objects.create(instrument=instrument, source="logger", external_ref="crash", start=start)
    reconcile(since=start - dt.timedelta(days=1), now=start + dt.timedelta(hours=20))
    session = UsageSession.objects.get()
    assert session.end == start + dt.timedelta(hours=12) and session.auto_closed
    assert ReviewFlag.objects.filter(kind="open_session", session=session).exists()


def test_a_rating_is_asked_once(world, api_as):
    instrument, bookings, monday = _scenario(world)
    reconcile(since=monday - dt.timedelta(days=1), now=monday + dt.timedelta(days=6))
    service = ServiceRecord.objects.get(item__booking=bookings["on_time"])
    api = api_as(world.researcher)
    assert api_as(world.other_researcher).post(f"/service-records/{service.pk}/rating", {"rating": 5}
                                               ).status_code == 404
    assert api.post(f"/service-records/{service.pk}/rating", {"rating": 9}).status_code == 422
    assert api.post(f"/service-records/{service.pk}/rating", {"rating": 4}).status_code == 200
    assert api.post(f"/service-records/{service.pk}/rating", {"rating": 5}).status_code == 409


@requires_postgres
def test_postgresql_bills_and_flags_by_the_same_rules_as_python(world, monkeypatch, settings):
    """On PostgreSQL each chunk's items and flags are made by SQL: they must be what the Python
    rules (``usage.charging`` and the generic path) make, for every charge mode and policy."""
    from django.db.models import Exists, OuterRef

    from usage.services import reconcile as module

    settings.CREDIT_MIN_TO_BOOK = -10_000  # the late cancellations below would otherwise ban the users

    monday = next_weekday(0, 8, weeks_ahead=-1)
    created_at = monday - dt.timedelta(days=7)
    cases = []  # (booking, policy)
    policies = [{"min_charge_minutes": 0, "rounding_minutes": 15, "no_show_charge_percent": 100,
                 "late_cancel_charge_percent": 50},
                {"min_charge_minutes": 45, "rounding_minutes": 50, "no_show_charge_percent": 37,
                 "late_cancel_charge_percent": 0},
                {"min_charge_minutes": 130, "rounding_minutes": 1, "no_show_charge_percent": 0,
                 "late_cancel_charge_percent": 33}]
    users = [world.researcher, world.other_researcher, world.company_user]
    # Without an organization of their own: a guest of lab A (internal to A's instruments through the
    # lab) and the bureau's officer (in no lab: external to every instrument).
    guest = _user("lab_a_guest", None)
    accounts.set_membership(actor=None, lab=world.lab_a, user=guest, role="member")
    # (day, hour, booked minutes, used minutes and seconds or None, samples); the last is cancelled late
    plan = [(0, 2, 90, (97, 30), 5), (1, 2, 120, (171, 10), 0), (2, 2, 150, (41, 59), 3), (3, 2, 60, None, 0),
            (4, 2, 180, None, 0), (4, 6, 120, (120, 0), 7)]
    for mode in ("booked", "used", "longer", "per_sample", "per_use"):
        for number, policy in enumerate(policies):
            instrument = make_instrument(world, name=f"规则{mode}{number}",
                                         policy={"charge_mode": mode, "min_notice_minutes": 0, **policy})
            for index, (day, hour, minutes, used, samples) in enumerate(plan):
                start = monday + dt.timedelta(days=day, hours=hour)
                user = users[index % len(users)]
                booking = services.create_booking(user=user, instrument_id=instrument.pk, start=start,
                                                  end=start + dt.timedelta(minutes=minutes), purpose=mode,
                                                  now=created_at)
                if used is not None:
                    UsageSession.objects.create(
                        instrument=instrument, user=user, source="logger", external_ref=f"{booking.pk}",
                        start=start + dt.timedelta(minutes=3), samples=samples,
                        end=start + dt.timedelta(minutes=3 + used[0], seconds=used[1]))
                cases.append(booking)
            services.cancel_booking(actor=users[4 % len(users)], booking_id=cases[-2].pk,
                                    now=cases[-2].start - dt.timedelta(hours=2))
            # Use without a booking: the instrument's own researcher, a company's user, an unknown user;
            # a long session, one under a minute, one with samples.
            for hour, (minutes, seconds), samples, user in [(2, (37, 20), 2, world.researcher),
                                                            (6, (0, 40), 0, world.company_user),
                                                            (10, (200, 0), 4, None), (14, (61, 0), 1, guest),
                                                            (18, (15, 0), 0, world.bureau)]:
                start = monday + dt.timedelta(days=5, hours=hour)
                UsageSession.objects.create(instrument=instrument, user=user, source="logger",
                                            external_ref=f"unbooked-{hour}", start=start, samples=samples,
                                            end=start + dt.timedelta(minutes=minutes, seconds=seconds))
    now = monday + dt.timedelta(days=6)
    summary = reconcile(since=monday - dt.timedelta(days=1), now=now)
    assert (summary.completed, summary.no_shows, summary.items_created) == (4 * 15, 15, 11 * 15)  # + late cancels
    assert BillableItem.objects.filter(booking__isnull=False).count() == 6 * 15

    # Each item's quantity is usage.charging's for its stored minutes and samples.
    for item in BillableItem.objects.filter(booking__isnull=False).select_related("instrument__policy"):
        policy = item.instrument.policy
        expected = billable_quantity(
            charge_mode=policy.charge_mode, kind=item.kind, booked_minutes=item.booked_minutes,
            used_minutes=item.used_minutes, samples=item.samples, min_charge_minutes=policy.min_charge_minutes,
            rounding_minutes=policy.rounding_minutes, no_show_percent=policy.no_show_charge_percent,
            late_cancel_percent=policy.late_cancel_charge_percent)
        assert (item.unit, item.quantity) == (expected.unit, expected.quantity), (policy.charge_mode, item.kind)

    # The generic path, over the same settled bookings, finds nothing to create or change ...
    ids = [booking.pk for booking in cases]
    rows = [module._Row(values) for values in Booking.objects.filter(pk__in=ids).annotate(
        has_use=Exists(UsageSession.objects.filter(booking_id=OuterRef("pk")))).values_list(*module.CHUNK_COLUMNS)]
    usage_sums = module._usage_by_booking(ids)
    check = module.Summary()
    module._upsert_booking_items(rows, usage_sums, now=now, summary=check)
    assert (check.items_created, check.items_updated) == (0, 0)
    # ... nor among the unbooked sessions' items (quantity, unit, lab, internal use: every field compared),
    unbooked = BillableItem.objects.filter(session__isnull=False)
    assert unbooked.count() == 5 * 15
    assert {item.is_internal for item in unbooked} == {True, False}
    assert {item.unit for item in unbooked} == {"hour", "sample", "use"}
    module._upsert_unbooked_items(since=monday - dt.timedelta(days=1), until=now, summary=check)
    assert (check.items_created, check.items_updated) == (0, 0)
    assert ServiceRecord.objects.filter(item__session__isnull=False).count() == 5 * 15
    # ... and would write exactly the flags the SQL wrote, details included.
    written = []
    monkeypatch.setattr(module, "insert_rows", lambda _model, _columns, flag_rows, **_kw: written.extend(flag_rows))
    module._flag_bookings(rows, usage_sums)
    stored = ReviewFlag.objects.filter(booking__isnull=False).values_list("instrument_id", "booking_id", "kind",
                                                                           "detail")
    assert sorted(written) == sorted(stored)
    assert {kind for _i, _b, kind, _d in written} == {"no_show", "overrun", "early_finish"}


def test_settling_waits_for_the_end_and_for_the_grace_period(world):
    """A booking moves only once it has ended: completed if it had use; a no-show only once the
    policy's grace period after its start is over (until then it stays confirmed). The same on
    both backends (PostgreSQL decides in the statement that moves them)."""
    instrument = make_instrument(world, name="宽限仪器", policy={"min_notice_minutes": 0,
                                                                 "no_show_grace_minutes": 90})
    monday = next_weekday(0, 8, weeks_ahead=-1)

    def book(name, hours, minutes):
        start = monday + dt.timedelta(hours=hours)
        return services.create_booking(user=world.researcher, instrument_id=instrument.pk, start=start,
                                       end=start + dt.timedelta(minutes=minutes), purpose=name,
                                       now=monday - dt.timedelta(days=7))

    book("missed", 1, 60)
    used = book("used", 2, 60)
    book("grace", 4, 30)
    running = book("running", 4.5, 60)
    for booking in (used, running):
        UsageSession.objects.create(instrument=instrument, user=world.researcher, source="logger",
                                    external_ref=f"s{booking.pk}", start=booking.start,
                                    end=booking.start + dt.timedelta(minutes=15))

    def states():
        return {b.purpose: b.state for b in Booking.objects.filter(instrument=instrument)}

    first = reconcile(since=monday, now=monday + dt.timedelta(hours=5))
    assert (first.completed, first.no_shows) == (1, 1)
    assert states() == {"missed": "no_show", "used": "completed", "grace": "confirmed", "running": "confirmed"}
    second = reconcile(since=monday, now=monday + dt.timedelta(hours=5, minutes=30))
    assert (second.completed, second.no_shows) == (1, 1)
    assert states() == {"missed": "no_show", "used": "completed", "grace": "no_show", "running": "completed"}
    assert services.credit_score(world.researcher) == 80
    assert BillableItem.objects.filter(booking__instrument=instrument).count() == 4
    assert verify() is None


def test_a_session_is_matched_to_its_users_booking_or_the_earliest_when_the_user_is_unknown(world):
    """A logged session spanning two back-to-back bookings of different users goes to its own user's
    booking; one whose user is unknown to the earliest; one of a user with no booking there to none
    (it is unbooked use). The same on both backends."""
    instrument = make_instrument(world, name="匹配仪器", policy={"min_notice_minutes": 0})
    monday = next_weekday(0, 8, weeks_ahead=-1)
    first, second = (services.create_booking(user=user, instrument_id=instrument.pk,
                                             start=monday + dt.timedelta(hours=hours),
                                             end=monday + dt.timedelta(hours=hours + 1), purpose=f"b{hours}",
                                             now=monday - dt.timedelta(days=7))
                     for user, hours in ((world.researcher, 2), (world.other_researcher, 3)))

    def session(ref, user):
        return UsageSession.objects.create(instrument=instrument, user=user, source="logger", external_ref=ref,
                                           start=first.start, end=second.end)

    sessions = {"theirs": session("theirs", world.other_researcher), "unknown": session("unknown", None),
                "stranger": session("stranger", world.company_user)}
    reconcile(since=monday, now=monday + dt.timedelta(days=1))
    matched = {name: UsageSession.objects.get(pk=s.pk).booking_id for name, s in sessions.items()}
    assert matched == {"theirs": second.pk, "unknown": first.pk, "stranger": None}

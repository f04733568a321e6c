"""The lab manager's usage review: one table of open flags with the usage date, what happened in the
instrument's local time and the page's language, one decision per row, and "accept selected"."""

import datetime as dt
import re
import zoneinfo

import pytest
from django.test import Client

from bookings import services
from instrumentshare.audit.models import AuditEvent
from instrumentshare.core.errors import Conflict, Invalid, NotFound
from tests.bookings.conftest import make_instrument
from usage.models import ReviewFlag, UsageSession
from usage.services import review
from usage.services.reconcile import reconcile

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
MONDAY = dt.datetime(2026, 11, 2, 8, tzinfo=SHANGHAI)  # a fixed past week: the test never depends on today


@pytest.fixture
def flags(world):
    return make_flags(world)


def make_flags(world) -> dict[str, ReviewFlag]:
    """No-show, overrun and early finish of bookings at 10:00-12:00 Shanghai, and an unbooked session."""
    instrument = make_instrument(world, name="审核仪器", policy={"min_notice_minutes": 0})
    bookings = {}
    for name, day, user in [("overrun", 1, world.researcher), ("early", 2, world.other_researcher),
                            ("no_show", 3, world.researcher)]:
        start = MONDAY + dt.timedelta(days=day, hours=2)
        bookings[name] = services.create_booking(user=user, instrument_id=instrument.pk, start=start,
                                                 end=start + dt.timedelta(hours=2), purpose=name,
                                                 now=MONDAY - dt.timedelta(days=7))
    for ref, start, minutes, user in [("b", bookings["overrun"].start, 170, world.researcher),
                                      ("c", bookings["early"].start, 40, world.other_researcher),
                                      ("d", MONDAY + dt.timedelta(days=2, hours=6), 50, world.company_user)]:
        UsageSession.objects.create(instrument=instrument, user=user, source="logger", external_ref=ref,
                                    start=start, end=start + dt.timedelta(minutes=minutes))
    reconcile(since=MONDAY - dt.timedelta(days=1), now=MONDAY + dt.timedelta(days=6))
    return {flag.kind: flag for flag in ReviewFlag.objects.all()}


def client_for(user, language="zh-hans"):
    client = Client()
    client.force_login(user)
    client.cookies["django_language"] = language
    return client


def without_tokens(page: str) -> str:
    """The page without its CSRF tokens: a random token may hold the letters "UTC"."""
    return re.sub(r'value="[A-Za-z0-9]{64}"', "", page)


def test_the_review_is_one_table_with_usage_dates_and_local_times_in_chinese(world, flags):
    assert set(flags) == {"overrun", "early_finish", "no_show", "unbooked"}
    page = client_for(world.manager).get("/bookings/review/").content.decode()
    assert page.count('data-testid="flags"') == 1 and page.count('name="selected"') == 4
    assert "2026-11-03" in page and "2026-11-05" in page  # the usage dates (Tuesday, Thursday)
    assert "使用至 12:50；预约至 12:00。" in page  # 04:50 UTC shown at the instrument's 12:50
    assert "10:40 结束使用；预约至 12:00。" in page
    assert "无使用记录；预约时段 10:00–12:00。" in page and "14:00–14:50 无预约使用。" in page
    text = without_tokens(page)
    assert "UTC" not in text and "booked until" not in text and "no usage recorded" not in text


def test_the_english_page_says_the_same_in_english(world, flags):
    page = client_for(world.manager, "en").get("/bookings/review/").content.decode()
    assert "Used until 12:50; booked until 12:00." in page and "UTC" not in without_tokens(page)


def test_accept_selected_accepts_each_with_its_own_audit_record(world, flags):
    chosen = [flags["no_show"].pk, flags["unbooked"].pk]
    response = client_for(world.manager).post("/bookings/review/", {"action": "accept_selected", "selected": chosen},
                                              follow=True)
    assert "已接受 2 项。" in response.content.decode()
    states = dict(ReviewFlag.objects.values_list("kind", "state"))
    assert states == {"no_show": "accepted", "unbooked": "accepted", "overrun": "open", "early_finish": "open"}
    audited = AuditEvent.objects.filter(action="review_flag.accepted").values_list("target_id", flat=True)
    assert sorted(audited) == sorted(str(pk) for pk in chosen)
    page = client_for(world.manager).get("/bookings/review/").content.decode()
    assert page.count('name="selected"') == 2


def test_one_decision_per_row_still_corrects_with_minutes_and_a_reason(world, flags):
    overrun = flags["overrun"]
    client_for(world.manager).post("/bookings/review/", {"flag": overrun.pk, "decision": "corrected",
                                                         "minutes": "135", "reason": "clock drift"})
    overrun.refresh_from_db()
    assert overrun.state == "corrected" and overrun.reason == "clock drift"


@pytest.mark.parametrize("selected", [[], ["abc"]])
def test_accepting_nothing_or_nonsense_is_a_message_not_an_error(world, flags, selected):
    response = client_for(world.manager).post("/bookings/review/", {"action": "accept_selected",
                                                                    "selected": selected}, follow=True)
    assert response.status_code == 200 and "请选择要接受的待审项。" in response.content.decode()
    assert not ReviewFlag.objects.exclude(state="open").exists()


def test_another_labs_manager_may_not_accept_these_flags(world, flags):
    with pytest.raises(NotFound):
        review.accept_flags(actor=world.other_manager, flag_ids=[flags["no_show"].pk])
    response = client_for(world.other_manager).post(
        "/bookings/review/", {"action": "accept_selected", "selected": [flags["no_show"].pk]}, follow=True)
    assert response.status_code == 200 and "没有这个待审项。" in response.content.decode()
    assert not ReviewFlag.objects.exclude(state="open").exists()


def test_accept_flags_is_all_or_none(world, flags):
    review.resolve_flag(actor=world.manager, flag_id=flags["overrun"].pk, decision="waived", reason="drift")
    with pytest.raises(Conflict):
        review.accept_flags(actor=world.manager, flag_ids=[flags["no_show"].pk, flags["overrun"].pk])
    assert ReviewFlag.objects.get(pk=flags["no_show"].pk).state == "open"
    with pytest.raises(Invalid):
        review.accept_flags(actor=world.manager, flag_ids=[])
    accepted = review.accept_flags(actor=world.manager, flag_ids=[flags["no_show"].pk, flags["no_show"].pk])
    assert [flag.state for flag in accepted] == ["accepted"]

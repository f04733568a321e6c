import datetime as dt
import zoneinfo

import pytest

from catalog import services as catalog_services
from catalog.models import Category
from catalog.reference import load_categories

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
WEEKDAYS_8_TO_18 = [(day, 8 * 60, 18 * 60) for day in range(5)]


def next_weekday(weekday: int, hour: int, minute: int = 0, *, zone=SHANGHAI, weeks_ahead: int = 1) -> dt.datetime:
    """A local time on a weekday (0 = Monday) of the week ``weeks_ahead`` weeks from now (1 = next week).

    All days asked for with the same ``weeks_ahead`` fall in one calendar week, whatever today is.
    """
    today = dt.datetime.now(zone).date()
    next_monday = today + dt.timedelta(days=7 - today.weekday())
    day = next_monday + dt.timedelta(days=weekday + 7 * (weeks_ahead - 1))
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)


def make_instrument(world, *, name="扫描电镜", lab=None, manager=None, policy=None, hours=None, zone="Asia/Shanghai",
                    share_mode="external", publish=True, **fields):
    lab = lab or world.lab_a
    manager = manager or world.manager
    load_categories()  # a transactional test's flush empties even the reference tables
    category = Category.objects.get(code="010102")
    instrument = catalog_services.create_instrument(
        actor=manager, lab=lab, name_zh=name, name_en="Scanning electron microscope",
        asset_number=fields.pop("asset_number", f"A-{name}-{zone}"), category_id=category.code,
        original_value=fields.pop("original_value", "1500000.00"), funded_central=True, time_zone=zone,
        share_mode=share_mode, policy={"min_notice_minutes": 60, "horizon_days": 60, **(policy or {})},
        opening_hours=WEEKDAYS_8_TO_18 if hours is None else hours, **fields,
    )
    if publish:
        catalog_services.publish(actor=manager, instrument_id=instrument.pk)
    instrument.refresh_from_db()
    return instrument


@pytest.fixture
def instrument(world):
    return make_instrument(world)


@pytest.fixture
def slot():
    start = next_weekday(1, 10)  # a Tuesday at 10:00 in Shanghai, next week
    return start, start + dt.timedelta(hours=2)

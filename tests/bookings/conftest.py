import datetime as dt
import zoneinfo

import pytest

from catalog import services as catalog_services
from catalog.models import Category

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
WEEKDAYS_8_TO_18 = [(day, 8 * 60, 18 * 60) for day in range(5)]


def next_weekday(weekday: int, hour: int, minute: int = 0, *, zone=SHANGHAI, weeks_ahead: int = 1) -> dt.datetime:
    """A local time on a coming weekday (0 = Monday), at least a few days ahead."""
    today = dt.datetime.now(zone).date()
    days = (weekday - today.weekday()) % 7 + 7 * weeks_ahead
    return dt.datetime.combine(today + dt.timedelta(days=days), dt.time(hour, minute), tzinfo=zone)


def make_instrument(world, *, name="扫描电镜", lab=None, manager=None, policy=None, hours=None, zone="Asia/Shanghai",
                    share_mode="external", publish=True, **fields):
    lab = lab or world.lab_a
    manager = manager or world.manager
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

import datetime as dt
from decimal import Decimal

import pytest

from submissions import services
from tests.bookings.conftest import make_instrument

PDF = b"%PDF-1.4\n% results\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def sample_instrument(world):
    """An XRD in sample mode with a lab list of two analyses and a 7-day turnaround target."""
    instrument = make_instrument(world, name="X射线衍射仪", policy={"mode": "samples", "charge_mode": "per_sample"})
    services.set_sample_service(actor=world.manager, instrument_id=instrument.pk, turnaround_days=7,
                                safety_requirements="MSDS for every hazardous sample.")
    services.add_analysis(actor=world.manager, instrument_id=instrument.pk, code="XRD-PHASE", name_zh="物相分析",
                          name_en="Phase analysis", price_per_sample=Decimal("200.00"))
    services.add_analysis(actor=world.manager, instrument_id=instrument.pk, code="XRD-CRYST", name_zh="结晶度",
                          name_en="Crystallinity", price_per_sample=Decimal("150.00"))
    return instrument


def request_body(instrument, **extra):
    analyses = list(instrument.analyses.values_list("pk", flat=True))
    return {"instrument_id": instrument.pk, "sample_count": 3, "sample_type": "TiO2 powder",
            "sample_state": "powder", "analysis_ids": analyses, "after_use": "return", "note": "dry before use",
            **extra}


def quote_body(valid_days: int = 30):
    return {"items": [{"description": "Phase analysis", "quantity": 3, "unit_price": "200.00"},
                      {"description": "Crystallinity", "quantity": 3, "unit_price": "150.00", "unit": "sample"}],
            "valid_until": (dt.date.today() + dt.timedelta(days=valid_days)).isoformat(),
            "discount_percent": "10", "note": "academic rate"}


class _CommittingClient:
    """The JSON client, with the after-commit work of each call (e-mail) run as a real commit would."""

    def __init__(self, api, capture):
        self.api, self.capture = api, capture
        self.client, self.headers = api.client, api.headers

    def __getattr__(self, name):
        method = getattr(self.api, name)

        def call(*args, **kwargs):
            with self.capture(execute=True):
                return method(*args, **kwargs)

        return call


@pytest.fixture
def api_as(api_as, django_capture_on_commit_callbacks):
    def make(user, scope: str = "write"):
        return _CommittingClient(api_as(user, scope), django_capture_on_commit_callbacks)

    return make


@pytest.fixture
def instrument(world):
    """An instrument booked by time (not in sample mode)."""
    return make_instrument(world)

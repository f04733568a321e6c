"""Money: one rounding rule, minor units, and no drift between charges, lines, invoices and exports."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import exports, services
from billing.models import Charge, Invoice, RateCard
from billing.money import from_minor_units, money, share_of, to_minor_units
from billing.pricing import price
from billing.services import closing
from tests.billing.conftest import MONTH, after_month, at, make_item
from tests.billing.test_exports import keyed

prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("99999.99"), places=2)
amounts = st.decimals(min_value=Decimal("-99999999.99"), max_value=Decimal("99999999.99"), places=2)
percents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2)


def test_halves_round_away_from_zero():
    assert money(Decimal("0.005")) == Decimal("0.01")
    assert money(Decimal("0.015")) == Decimal("0.02")   # not banker's rounding
    assert money(Decimal("-0.005")) == Decimal("-0.01")
    assert money(Decimal("2.675")) == Decimal("2.68")
    assert money("1") == Decimal("1.00")


@given(amounts)
def test_minor_units_round_trip(amount):
    assert from_minor_units(to_minor_units(amount, "CNY"), "cny") == amount
    assert to_minor_units(amount, "CNY") == int(amount * 100)


def test_zero_decimal_currencies_have_no_minor_unit():
    assert to_minor_units(Decimal("500"), "JPY") == 500
    with pytest.raises(ValueError):
        to_minor_units(Decimal("500.50"), "JPY")


@given(st.decimals(min_value=Decimal("0"), max_value=Decimal("99999999.99"), places=2), percents)
def test_a_share_is_never_more_than_the_amount(amount, percent):
    share = share_of(amount, percent)
    assert Decimal("0") <= share <= amount
    assert share == share.quantize(Decimal("0.01"))


@given(st.integers(min_value=0, max_value=24 * 60 * 31), prices, prices)
def test_an_hourly_charge_is_minutes_times_the_hourly_rate_rounded_once(minutes, rate, surcharge):
    card = RateCard(pk=1, minimum_charge=Decimal("0"), assisted_surcharge=surcharge, currency="CNY")
    card.price_table = {("internal", "hour"): rate}
    plain = price(card=card, user_class="internal", unit="hour", quantity=minutes, kind="booking", assisted=False)
    assisted = price(card=card, user_class="internal", unit="hour", quantity=minutes, kind="booking", assisted=True)
    assert plain.amount == money(Decimal(minutes) * rate / 60)
    assert assisted.amount == money(Decimal(minutes) * (rate + surcharge) / 60)
    assert abs(plain.amount - Decimal(minutes) * rate / 60) <= Decimal("0.005")


usage = st.lists(st.tuples(st.sampled_from(["researcher", "other_researcher", "company_user"]),
                           st.sampled_from(["hour", "sample", "use"]), st.integers(min_value=1, max_value=600)),
                 min_size=1, max_size=12)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(usage=usage, rate=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999.99"), places=2),
       share=percents)
def test_no_rounding_drift_between_charges_lines_invoices_and_export(world, billing, usage, rate, share):
    with transaction.atomic():
        rates = [{"user_class": c, "unit": u, "price": str(rate * k)} for k, c in enumerate(
            ["internal", "academic", "industry"], start=1) for u in ("hour", "sample", "use")]
        services.create_rate_card(actor=None, instrument_id=billing.instrument.pk, valid_from=dt.date(2026, 9, 1),
                                  rates=rates)
        services.issue_voucher(actor=None, company=world.company, amount="100000", share_percent=share,
                               valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2027, 12, 31))
        for day, (who, unit, quantity) in enumerate(usage, start=1):
            make_item(billing.instrument, getattr(world, who), start=at(day), unit=unit, quantity=quantity,
                      minutes=quantity if unit == "hour" else 60)
        closing.close_period(actor=None, month=MONTH, now=after_month())
        charges = list(Charge.objects.filter(period=MONTH))
        assert len(charges) == len(usage)
        for invoice in Invoice.objects.all():
            mine = [c for c in charges if c.invoice_id == invoice.pk]
            lines = list(invoice.lines.all())
            assert invoice.subtotal == sum(c.amount for c in mine) == sum(line.amount for line in lines)
            assert invoice.voucher_amount == sum(c.voucher_amount for c in mine) == sum(
                line.voucher_amount for line in lines)
            assert invoice.amount_due == invoice.subtotal - invoice.voucher_amount
        body = b"".join(exports.csv_stream(exports.export_queryset(Charge.objects.filter(period=MONTH))))
        rows = keyed(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
        total = rows[-1]
        assert Decimal(total["amount"]) == sum(i.subtotal for i in Invoice.objects.all())
        assert Decimal(total["voucher_share"]) == sum(i.voucher_amount for i in Invoice.objects.all())
        assert Decimal(total["amount_due"]) == sum(i.amount_due for i in Invoice.objects.all())
        assert sum(Decimal(r["amount"]) for r in rows[:-1]) == Decimal(total["amount"])
        transaction.set_rollback(True)

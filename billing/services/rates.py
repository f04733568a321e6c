"""Rate cards: the prices of an instrument from a day on, never reaching back over charges made."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.db.models import Max

from catalog import queries as catalog_queries
from catalog.models import Instrument
from instrumentshare.accounts import queries as people
from instrumentshare.audit.services import record
from instrumentshare.core.errors import Conflict, Forbidden, Invalid, NotFound
from usage.models import BillableItem

from .. import queries
from ..models import (
    Charge,
    Rate,
    RateCard,
    UserClass,
)
from ..pricing import local_day
from .common import checked_amount, validated

# --- rate cards ---------------------------------------------------------------------------------


def can_manage_rates(user, instrument: Instrument) -> bool:
    return people.is_lab_manager(user, instrument.lab_id) or queries.can_manage_org_billing(
        user, instrument.organization_id)


def _last_charged_day(instrument: Instrument) -> dt.date | None:
    last = Charge.objects.filter(instrument=instrument, rate_card__isnull=False).aggregate(
        last=Max("service_start"))["last"]
    return local_day(last, instrument.zone) if last else None


@transaction.atomic
def create_rate_card(*, actor, instrument_id: int, valid_from: dt.date, rates: list[dict],
                     minimum_charge=Decimal("0"), assisted_surcharge=Decimal("0"), note: str = "",
                     currency: str | None = None) -> RateCard:
    """A new price list from ``valid_from`` on. It may not reach back over charges already made:
    a past charge keeps the price it was made with."""
    instrument = Instrument.objects.select_for_update().filter(pk=instrument_id).first()
    if instrument is None:
        raise NotFound("not_found", "No such instrument.")
    if actor is not None and not can_manage_rates(actor, instrument):
        raise Forbidden("forbidden", "Only the instrument's lab managers or finance set its rates.")
    last = _last_charged_day(instrument)
    if last is not None and valid_from <= last:
        raise Conflict("rate_card_backdated",
                       f"Charges up to {last.isoformat()} are already priced; a new card starts after that day.")
    if RateCard.objects.filter(instrument=instrument, valid_from=valid_from).exists():
        raise Conflict("rate_card_exists", "A rate card already starts on that day.")
    if not rates:
        raise Invalid("rates_required", "A rate card has at least one price.")
    card = RateCard(instrument=instrument, valid_from=valid_from,
                    minimum_charge=checked_amount(minimum_charge, allow_zero=True),
                    assisted_surcharge=checked_amount(assisted_surcharge, allow_zero=True), note=(note or "")[:300],
                    created_by=actor)
    if currency:
        card.currency = currency.upper()
    validated(card, exclude=["instrument", "created_by"])
    card.save()
    seen = set()
    objects = []
    for row in rates:
        key = (row["user_class"], row["unit"])
        if row["user_class"] not in UserClass.values or row["unit"] not in BillableItem.Unit.values or key in seen:
            raise Invalid("invalid_rate", f"Unknown or repeated rate {key}.")
        seen.add(key)
        objects.append(Rate(card=card, user_class=row["user_class"], unit=row["unit"],
                            price=checked_amount(row["price"], allow_zero=True)))
    Rate.objects.bulk_create(objects)
    record(actor=actor, action="billing.rate_card.created", target=card,
           after={"instrument_id": instrument.pk, "valid_from": valid_from, "minimum_charge": card.minimum_charge,
                  "assisted_surcharge": card.assisted_surcharge,
                  "rates": [[r.user_class, r.unit, str(r.price)] for r in objects]})
    return card


@transaction.atomic
def delete_rate_card(*, actor, card_id: int) -> None:
    card = RateCard.objects.select_for_update().select_related("instrument").filter(pk=card_id).first()
    # Rate cards are public with their instrument: who sees the instrument and may not set its rates gets 403.
    if card is None or not catalog_queries.visible_instruments(actor).filter(pk=card.instrument_id).exists():
        raise NotFound("not_found", "No such rate card.")
    if not can_manage_rates(actor, card.instrument):
        raise Forbidden("forbidden", "Only the instrument's lab managers or finance set its rates.")
    if Charge.objects.filter(rate_card=card).exists():
        raise Conflict("rate_card_used", "Charges were priced with this card; add a new card instead.")
    record(actor=actor, action="billing.rate_card.deleted", target=card,
           before={"instrument_id": card.instrument_id, "valid_from": card.valid_from})
    card.rates.all().delete()
    card.delete()

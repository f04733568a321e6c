"""Pricing a billable item: which card, which class, which price, one rounding. Pure, and loaded in bulk.

``RateBook.load(instrument_ids)`` reads every card of those instruments in two queries; pricing a
month of items is then arithmetic. The same function prices a preview ("what will this cost") and
the charge itself, so the two cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from instrumentshare.accounts.models import Organization
from usage.models import BillableItem, ServiceRecord

from .models import Rate, RateCard, UserClass
from .money import ZERO, money

SIXTY = Decimal(60)
HOUR_PLACES = Decimal("0.0001")
# A minimum charge is for a service; a no-show or late-cancellation fee is already a fraction of one.
MINIMUM_APPLIES_TO = {BillableItem.Kind.BOOKING, BillableItem.Kind.UNBOOKED}


@dataclass(frozen=True)
class Price:
    rate_card_id: int | None
    user_class: str
    unit: str
    quantity: Decimal
    minutes: int
    unit_price: Decimal
    surcharge: Decimal
    minimum_applied: bool
    amount: Decimal
    currency: str


def user_class_for(*, is_internal: bool, organization: Organization | None) -> str:
    """Internal users of the owning organization; industry for companies; other academic otherwise."""
    if is_internal:
        return UserClass.INTERNAL
    if organization is not None and organization.kind == Organization.Kind.COMPANY:
        return UserClass.INDUSTRY
    return UserClass.ACADEMIC


def local_day(moment: dt.datetime, zone) -> dt.date:
    return timezone.localtime(moment, zone).date()


def is_assisted(record: ServiceRecord | None) -> bool:
    """Staff ran the instrument for the user (a technical service): the assisted surcharge applies."""
    return record is not None and record.way == ServiceRecord.Way.TECHNICAL


class RateBook:
    """Every rate card of some instruments, to find the one valid on a day without a query."""

    def __init__(self, cards: list[RateCard]):
        self._cards: dict[int, list[RateCard]] = {}
        for card in sorted(cards, key=lambda c: (c.instrument_id, c.valid_from)):
            self._cards.setdefault(card.instrument_id, []).append(card)
        self._days = {key: [c.valid_from for c in value] for key, value in self._cards.items()}

    @classmethod
    def load(cls, instrument_ids) -> RateBook:
        cards = list(RateCard.objects.filter(instrument_id__in=set(instrument_ids)))
        prices: dict[int, dict] = {card.pk: {} for card in cards}
        for rate in Rate.objects.filter(card_id__in=prices):
            prices[rate.card_id][(rate.user_class, rate.unit)] = rate.price
        for card in cards:
            card.price_table = prices[card.pk]
        return cls(cards)

    def card_for(self, instrument_id: int, day: dt.date) -> RateCard | None:
        days = self._days.get(instrument_id)
        if not days:
            return None
        index = bisect_right(days, day)
        return self._cards[instrument_id][index - 1] if index else None


def price(*, card: RateCard, user_class: str, unit: str, quantity: int, kind: str, assisted: bool) -> Price | None:
    """Quantity × (price + surcharge), one rounding, then the minimum. ``None`` when the card has no such price."""
    unit_price = card.price_table.get((user_class, unit))
    if unit_price is None:
        return None
    surcharge = card.assisted_surcharge if assisted else ZERO
    per_unit = unit_price + surcharge
    if unit == BillableItem.Unit.HOUR:
        minutes = int(quantity)
        amount = money(Decimal(minutes) * per_unit / SIXTY)
        units = (Decimal(minutes) / SIXTY).quantize(HOUR_PLACES)
    else:
        minutes = 0
        amount = money(Decimal(int(quantity)) * per_unit)
        units = Decimal(int(quantity))
    minimum_applied = False
    if kind in MINIMUM_APPLIES_TO and quantity > 0 and amount < card.minimum_charge:
        amount, minimum_applied = money(card.minimum_charge), True
    return Price(rate_card_id=card.pk, user_class=user_class, unit=unit, quantity=units, minutes=minutes,
                 unit_price=unit_price, surcharge=surcharge, minimum_applied=minimum_applied, amount=amount,
                 currency=card.currency)


def agreed_price(item: BillableItem) -> Price:
    """An item whose price was agreed in a quote (a sample request's line): that amount, no card, no minimum."""
    organization = item.user.organization if item.user_id else None
    quantity = Decimal(int(item.quantity))
    return Price(rate_card_id=None, user_class=user_class_for(is_internal=item.is_internal, organization=organization),
                 unit=item.unit, quantity=quantity, minutes=0,
                 unit_price=money(item.agreed_amount / quantity) if quantity else ZERO, surcharge=ZERO,
                 minimum_applied=False, amount=money(item.agreed_amount), currency=settings.DEFAULT_CURRENCY)


def price_item(item: BillableItem, book: RateBook, *, record: ServiceRecord | None = None) -> Price | None:
    if item.agreed_amount is not None:
        return agreed_price(item)
    instrument = item.instrument
    card = book.card_for(instrument.pk, local_day(item.service_start, instrument.zone))
    if card is None:
        return None
    organization = item.user.organization if item.user_id else None
    return price(card=card, user_class=user_class_for(is_internal=item.is_internal, organization=organization),
                 unit=item.unit, quantity=item.quantity, kind=item.kind, assisted=is_assisted(record))


def preview_cost(items) -> dict[int, Price | None]:
    """What items will cost, priced exactly as their charge will be (for "what my bookings cost")."""
    items = list(items)
    book = RateBook.load({item.instrument_id for item in items})
    records = {r.item_id: r for r in ServiceRecord.objects.filter(item_id__in=[item.pk for item in items])}
    return {item.pk: price_item(item, book, record=records.get(item.pk)) for item in items}

"""Fill the database with a realistic city for benchmarks: ``generate_city --instruments 10000 --years 3``.

What it writes (full scale, 10,000 instruments over 3 years): ~200 organizations, ~1,000 labs,
~20,000 people with lab memberships, instruments with categories from the shipped table,
opening hours and booking policies, about 2,000,000 bookings over the years plus a busy,
not yet reconciled last month (~500,000 bookings and usage sessions, what the reconciliation
benchmark works on), usage sessions, billable items and service records for the reconciled
history, rate cards, billing accounts and up to 1,000,000 charges when billing is installed.

How it stays fast and correct:
- PostgreSQL: one COPY per table through psycopg 3 (``cursor.copy()``); elsewhere bulk_create.
  Ids are given by the generator (from the table's current maximum), so rows can refer to each
  other without reading anything back; the sequences are moved past them at the end.
- Each instrument's bookings are laid on its own timeline, one after the other, each starting
  at or after the previous one's ``blocked_until`` (end + buffer): active bookings can never
  overlap, so the exclusion constraint accepts every row. Starts and ends fall on the slot grid
  inside the opening hours of the instrument's zone.
- Reproducible: every random choice comes from ``random.Random(seed)``, and times are laid out
  relative to ``--anchor`` (default: today, 00:00 UTC).
- It refuses a database that already holds people, instruments or bookings, unless ``--force``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import time
import uuid
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from bookings.models import Booking
from catalog.models import BookingPolicy, Downtime, Instrument, OpeningRule
from catalog.reference import categories, category_level, load_categories
from catalog.windows import refresh_opening_windows
from instrumentshare.accounts.models import Lab, Membership, Organization, User
from instrumentshare.core.bulk import defaults_for
from usage.charging import billable_quantity
from usage.models import BillableItem, ServiceRecord, UsageSession

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
DAY = 86400
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")

SCALES = {
    # instruments, years, bookings per instrument-year in the history, bookings per instrument in the open month
    "quick": {"instruments": 300, "years": 0.25, "history_rate": 67.0, "busy_month": 50, "charges": 1_000_000},
    "full": {"instruments": 10_000, "years": 3.0, "history_rate": 67.0, "busy_month": 85, "charges": 1_000_000},
}
# The tables that take millions of rows: their secondary indexes are built once, after the load.
BULK_TABLES = ["bookings_booking", "usage_usagesession", "usage_billableitem", "usage_servicerecord",
               "billing_charge"]
DISTRICTS = ["市南区", "市北区", "李沧区", "崂山区", "城阳区", "黄岛区", "即墨区", "胶州市", "平度市", "莱西市"]
DISTRICT_WEIGHTS = [14, 10, 8, 22, 12, 18, 6, 4, 3, 3]
ORG_KINDS = [("university", "大学", "University", 30), ("institute", "研究所", "Institute", 30),
             ("company", "公司", "Company", 25), ("hospital", "医院", "Hospital", 10),
             ("government", "检测中心", "Testing Centre", 5)]
# (weekdays, [(open minute, close minute)], weight): office hours, long days, round the clock, split day.
OPENING_PATTERNS = [
    (range(5), [(8 * 60, 18 * 60)], 60),
    (range(6), [(8 * 60, 22 * 60)], 25),
    (range(7), [(0, 1440)], 10),
    (range(5), [(8 * 60 + 30, 12 * 60), (13 * 60 + 30, 17 * 60 + 30)], 5),
]
ZONES = [("Asia/Shanghai", 97), ("Europe/Berlin", 2), ("America/New_York", 1)]
MANUFACTURERS = ["Thermo Fisher", "Bruker", "Agilent", "Zeiss", "JEOL", "Hitachi", "Shimadzu", "Waters",
                 "Leica", "Oxford Instruments", "聚光科技", "天美仪器", "舜宇光学", "中科科仪"]


def _weighted(rng: random.Random, choices: Sequence, weights: Sequence[int]):
    return rng.choices(choices, weights=weights)[0]


class Loader:
    """Writes rows of one model: COPY on PostgreSQL, bulk_create elsewhere.

    Rows are tuples in the order of ``columns`` (attnames, e.g. ``instrument_id``); every other
    concrete column gets its field default, computed once per call.
    """

    def __init__(self, stdout, *, now: dt.datetime):
        self.stdout = stdout
        self.now = now
        self.postgres = connection.vendor == "postgresql"
        self.counts: dict[str, int] = {}
        self.frozen: set[str] = set()  # tables emptied in this transaction: COPY writes their rows frozen

    def load(self, model, columns: Sequence[str], rows: Iterable[tuple]) -> int:
        started = time.monotonic()
        try:
            tail_names, tail = defaults_for(model, columns, now=self.now)
        except ValueError as error:
            raise CommandError(str(error)) from error
        names = [*columns, *tail_names]
        count = 0
        if self.postgres:
            by_attname = {field.attname: field.column for field in model._meta.concrete_fields}
            column_sql = ", ".join(connection.ops.quote_name(by_attname[name]) for name in names)
            table = connection.ops.quote_name(model._meta.db_table)
            with connection.cursor() as cursor:
                # Binary COPY: the server parses no text (timestamps are most of a booking row).
                cursor.execute("SELECT attname, atttypid FROM pg_attribute "
                               "WHERE attrelid = %s::regclass AND attnum > 0", [model._meta.db_table])
                oids = dict(cursor.fetchall())
                types = [oids[by_attname[name]] for name in names]
                freeze = ", FREEZE" if model._meta.db_table in self.frozen else ""
                copy_sql = f"COPY {table} ({column_sql}) FROM STDIN (FORMAT BINARY{freeze})"
                with cursor.cursor.copy(copy_sql) as copy:
                    copy.set_types(types)
                    for row in rows:
                        copy.write_row(row + tail)
                        count += 1
        else:
            batch = []
            for row in rows:
                batch.append(model(**dict(zip(names, row + tail, strict=True))))
                if len(batch) >= 2000:
                    model.objects.bulk_create(batch)
                    count += len(batch)
                    batch = []
            model.objects.bulk_create(batch)
            count += len(batch)
        self.counts[model._meta.label] = self.counts.get(model._meta.label, 0) + count
        elapsed = time.monotonic() - started
        frozen = " (frozen)" if self.postgres and model._meta.db_table in self.frozen else ""
        self.stdout.write(f"  {model._meta.label:<28} {count:>10,} rows  {elapsed:7.1f} s{frozen}")
        return count


def next_id(model) -> int:
    return (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1


class Zone:
    """Local <-> UTC seconds for one IANA zone, with the offset cached per local day."""

    def __init__(self, name: str):
        self.name = name
        self.zone = zoneinfo.ZoneInfo(name)
        self.offsets: dict[int, int] = {}

    def offset(self, local_day: int) -> int:
        offset = self.offsets.get(local_day)
        if offset is None:
            noon = EPOCH + dt.timedelta(days=local_day, hours=12)
            offset = int(noon.astimezone(self.zone).utcoffset().total_seconds())
            self.offsets[local_day] = offset
        return offset

    def to_utc(self, local_seconds: int) -> int:
        return local_seconds - self.offset(local_seconds // DAY)

    def to_local(self, utc_seconds: int) -> int:
        return utc_seconds + self.offset((utc_seconds + 8 * 3600) // DAY)


class City:
    def __init__(self, *, rng: random.Random, loader: Loader, stdout, instruments: int, years: float,
                 history_rate: float, busy_month: int, charges: int, anchor: dt.datetime):
        self.rng = rng
        self.loader = loader
        self.stdout = stdout
        self.instrument_count = instruments
        self.years = years
        self.history_rate = history_rate
        self.busy_month = busy_month
        self.charge_limit = charges
        self.anchor = anchor
        self.anchor_s = int((anchor - EPOCH).total_seconds())
        self.history_start_s = self.anchor_s - int(years * 365 * DAY)
        self.open_month_start_s = self.anchor_s - 30 * DAY
        self.now = loader.now
        self.zones: dict[str, Zone] = {}

    # --- people -----------------------------------------------------------------------------

    def people(self) -> None:
        rng = self.rng
        org_count = max(3, self.instrument_count // 50)
        lab_count = max(org_count, self.instrument_count // 10)
        user_count = max(20, self.instrument_count * 2)
        first_org, first_lab, first_user = next_id(Organization), next_id(Lab), next_id(User)
        self.orgs = []  # (id, kind, district)
        org_rows = []
        for index in range(org_count):
            kind, zh, en, _weight = _weighted(rng, ORG_KINDS, [k[3] for k in ORG_KINDS])
            org_id = first_org + index
            district = _weighted(rng, DISTRICTS, DISTRICT_WEIGHTS)
            self.orgs.append((org_id, kind, district))
            org_rows.append((org_id, f"青岛第{org_id}{zh}", f"Qingdao {en} {org_id}", kind, district,
                             f"{district}科技路{rng.randint(1, 999)}号", self.now))
        self.loader.load(Organization, ["id", "name_zh", "name_en", "kind", "district", "address", "created_at"],
                         org_rows)
        self.labs = []  # (id, org_id, district)
        lab_rows = []
        for index in range(lab_count):
            org_id, _kind, district = self.orgs[index] if index < org_count else rng.choice(self.orgs)
            lab_id = first_lab + index
            self.labs.append((lab_id, org_id, district))
            lab_rows.append((lab_id, org_id, f"city-lab-{lab_id}", f"第{lab_id}实验室", f"Lab {lab_id}", district,
                             f"lab{lab_id}@city.example.cn", self.now))
        self.loader.load(Lab, ["id", "organization_id", "code", "name_zh", "name_en", "district", "contact_email",
                               "created_at"], lab_rows)
        self.users = []  # (id, org_id, lab_id)
        self.users_by_org: dict[int, list[tuple]] = {}
        user_rows, membership_rows = [], []
        first_membership = next_id(Membership)
        managers = {}
        for index in range(user_count):
            user_id = first_user + index
            lab_id, org_id, _district = self.labs[index] if index < lab_count else rng.choice(self.labs)
            person = (user_id, org_id, lab_id)
            self.users.append(person)
            self.users_by_org.setdefault(org_id, []).append(person)
            user_rows.append((user_id, "!", f"city-u{user_id}", f"city-u{user_id}@city.example.cn", True, False,
                              False, self.now, f"用户{user_id}", org_id))
            role = Membership.Role.MANAGER if lab_id not in managers else Membership.Role.MEMBER
            managers.setdefault(lab_id, user_id)
            membership_rows.append((first_membership + index, user_id, lab_id, role, self.now))
        bureau_id = first_user + user_count
        user_rows.append((bureau_id, "!", f"city-bureau-{bureau_id}", f"bureau{bureau_id}@city.example.cn", True,
                          False, True, self.now, "市科技局", None))
        self.loader.load(User, ["id", "password", "username", "email", "is_active", "is_staff", "is_platform_admin",
                                "date_joined", "full_name", "organization_id"], user_rows)
        self.loader.load(Membership, ["id", "user_id", "lab_id", "role", "created_at"], membership_rows)

    # --- instruments --------------------------------------------------------------------------

    def instruments(self) -> None:
        rng = self.rng
        load_categories()
        rows = categories()
        parents = {row["parent"] for row in rows if row["parent"]}
        leaves = [row for row in rows if row["code"] not in parents and category_level(row["code"]) >= 2]
        first = next_id(Instrument)
        self.instrument_rows = []
        instrument_rows, policy_rows, rule_rows = [], [], []
        first_policy, rule_id = next_id(BookingPolicy), next_id(OpeningRule)
        popularity = [rng.lognormvariate(0, 0.8) for _ in range(self.instrument_count)]
        mean = sum(popularity) / len(popularity)
        for index in range(self.instrument_count):
            instrument_id = first + index
            lab_id, org_id, district = self.labs[index] if index < len(self.labs) else rng.choice(self.labs)
            category = rng.choice(leaves)
            zone = _weighted(rng, [z[0] for z in ZONES], [z[1] for z in ZONES])
            weekdays, spans, _weight = _weighted(rng, OPENING_PATTERNS, [p[2] for p in OPENING_PATTERNS])
            published = rng.random() < 0.95
            share = _weighted(rng, ["external", "internal", "not_shared"], [80, 15, 5])
            status = _weighted(rng, ["normal", "occasional_faults", "under_repair"], [92, 6, 2])
            value = Decimal(rng.randint(200, 30_000) * 1000)
            purchase = (self.anchor - dt.timedelta(days=rng.randint(400, 4000))).date()
            created = self.anchor - dt.timedelta(days=self.years * 365 + rng.randint(1, 60))
            instrument_rows.append((
                instrument_id, lab_id, org_id, f"{category['name_zh']}-{instrument_id}",
                f"{category['name_en'][:150]} {instrument_id}", f"QD-{instrument_id:07d}", category["code"],
                rng.random() < 0.6, rng.random() < 0.5, value, rng.choice(MANUFACTURERS),
                f"M{rng.randint(100, 9999)}", purchase, purchase + dt.timedelta(days=rng.randint(10, 90)),
                f"{category['name_zh']}的主要功能：测试与分析", district, f"{district}科技路{rng.randint(1, 999)}号",
                f"{rng.randint(1, 12)}{rng.randint(1, 40):02d}", zone, share, status,
                "published" if published else "draft", created if published else None, created, created,
            ))
            slot = _weighted(rng, [30, 60], [70, 30])
            buffer = _weighted(rng, [0, 15, 30], [70, 20, 10])
            approval = _weighted(rng, ["none", "external", "all"], [70, 20, 10])
            charge_mode = _weighted(rng, ["booked", "used", "longer", "per_sample", "per_use"], [50, 20, 20, 5, 5])
            policy = {"slot": slot, "buffer": buffer, "charge_mode": charge_mode, "min_minutes": slot,
                      "max_minutes": 8 * 60, "min_charge_minutes": _weighted(rng, [0, 30, 60], [60, 20, 20]),
                      "rounding_minutes": _weighted(rng, [15, 30, 60], [60, 30, 10]), "no_show_percent": 100,
                      "late_cancel_percent": 50, "horizon_days": _weighted(rng, [60, 90], [70, 30])}
            qualification = rng.random() < 0.2
            policy_rows.append((
                first_policy + index, instrument_id, "slots", slot, slot, 8 * 60, 60, policy["horizon_days"], 24,
                buffer, approval, qualification, rng.random() < 0.5, charge_mode, policy["min_charge_minutes"],
                policy["rounding_minutes"], 30, 100, 50,
            ))
            by_weekday: dict[int, list[tuple[int, int]]] = {}
            for weekday in weekdays:
                for open_minute, close_minute in spans:
                    rule_rows.append((rule_id, instrument_id, weekday, open_minute, close_minute))
                    rule_id += 1
                    by_weekday.setdefault(weekday, []).append((open_minute, close_minute))
            self.instrument_rows.append({
                "id": instrument_id, "org_id": org_id, "lab_id": lab_id, "zone": zone, "spans": by_weekday,
                "policy": policy, "popularity": popularity[index] / mean, "price": Decimal(rng.randint(4, 80) * 25),
                "status": status,
            })
        self.loader.load(Instrument, [
            "id", "lab_id", "organization_id", "name_zh", "name_en", "asset_number", "category_id", "funded_central",
            "funded_local", "original_value", "manufacturer", "model_number", "purchase_date", "acceptance_date",
            "main_functions", "district", "address", "room", "time_zone", "share_mode", "status", "listing_state",
            "published_at", "created_at", "updated_at"], instrument_rows)
        self.loader.load(BookingPolicy, [
            "id", "instrument_id", "mode", "slot_minutes", "min_minutes", "max_minutes", "min_notice_minutes",
            "horizon_days", "cancellation_window_hours", "buffer_minutes", "approval", "qualification_required",
            "closed_on_public_holidays", "charge_mode", "min_charge_minutes", "rounding_minutes",
            "no_show_grace_minutes", "no_show_charge_percent", "late_cancel_charge_percent"], policy_rows)
        self.loader.load(OpeningRule, ["id", "instrument_id", "weekday", "open_minute", "close_minute"], rule_rows)

    # --- the timeline of one instrument --------------------------------------------------------

    def _zone(self, name: str) -> Zone:
        if name not in self.zones:
            self.zones[name] = Zone(name)
        return self.zones[name]

    @staticmethod
    def _next_open(spans: dict[int, list[tuple[int, int]]], local: int) -> tuple[int, int] | None:
        """The opening span (local seconds) that contains ``local`` or comes next."""
        day = local // DAY
        for _ in range(8):
            for open_minute, close_minute in spans.get((day + 3) % 7, ()):  # 1970-01-01 was a Thursday
                span_start, span_end = day * DAY + open_minute * 60, day * DAY + close_minute * 60
                if span_end > local:
                    return max(span_start, local), span_end
            day += 1
        return None

    def _after_open_time(self, spans, local: int, seconds: float) -> int | None:
        """The local time ``seconds`` of opening hours after ``local``."""
        while True:
            span = self._next_open(spans, local)
            if span is None:
                return None
            if span[0] + seconds < span[1]:
                return int(span[0] + seconds)
            seconds -= span[1] - span[0]
            local = span[1]

    def _timeline(self, instrument: dict):
        """Yield (start_s, end_s, blocked_s, phase) for one instrument, never overlapping, or downtime."""
        rng = self.rng
        zone = self._zone(instrument["zone"])
        policy = instrument["policy"]
        slot_s, buffer_s = policy["slot"] * 60, policy["buffer"] * 60
        horizon_end = self.anchor_s + policy["horizon_days"] * DAY
        # Gaps are drawn in *open* time, so an office-hours instrument and a round-the-clock one both
        # get the asked number of bookings: mean gap = open time per booking - the mean booking.
        open_per_day = sum(c - o for spans in instrument["spans"].values() for o, c in spans) * 60 / 7
        mean_booking = 2.4 * 3600

        def mean_gap(per_day: float) -> float:
            return max(open_per_day / max(per_day, 1e-6) - mean_booking, 300.0)

        history_gap = mean_gap(self.history_rate / 365 * instrument["popularity"])
        busy_gap = mean_gap(self.busy_month / 30 * instrument["popularity"])
        future_gap = mean_gap(self.history_rate * 1.5 / 365 * instrument["popularity"])
        cursor = self.history_start_s
        durations = [d for d in (1, 1, 2, 2, 2, 3, 4, 6) if d * 60 >= policy["min_minutes"]]
        while cursor < horizon_end:
            if cursor < self.open_month_start_s:
                gap = history_gap
            elif cursor < self.anchor_s + 14 * DAY:
                gap = busy_gap
            else:
                gap = future_gap
            local = self._after_open_time(instrument["spans"], zone.to_local(cursor), rng.expovariate(1 / gap))
            if local is None:
                return
            cursor = max(cursor, zone.to_utc(local))
            if rng.random() < 0.002:  # planned maintenance about twice a year
                downtime_end = cursor + rng.choice((1, 2, 3)) * DAY
                yield cursor, downtime_end, downtime_end, "downtime"
                cursor = downtime_end
                continue
            span = self._next_open(instrument["spans"], zone.to_local(cursor))
            if span is None:
                return
            local_start = -(-span[0] // slot_s) * slot_s  # up to the slot grid
            hours = rng.choice(durations)
            local_end = min(local_start + hours * 3600, span[1] // slot_s * slot_s)
            if local_end - local_start < policy["min_minutes"] * 60:
                cursor = zone.to_utc(span[1])
                continue
            start, end = zone.to_utc(local_start), zone.to_utc(local_end)
            if end - start != local_end - local_start:
                # It would span a daylight-saving change (an instrument open until midnight on the night
                # the clocks move): the per-day offset cannot place it exactly, so leave that evening free.
                cursor = max(cursor, end, start) + 3600
                continue
            if start < cursor:  # a daylight-saving change moved the clock back under the cursor
                cursor += 3600
                continue
            if end > horizon_end:
                return
            yield start, end, end + buffer_s, "booking"
            cursor = end + buffer_s

    # --- bookings, usage, billable items ---------------------------------------------------------

    def _state(self, start: int, end: int) -> tuple[str, bool]:
        """(state, late cancellation) by when the booking lies."""
        roll = self.rng.random()
        if end <= self.open_month_start_s:
            if roll < 0.88:
                return "completed", False
            if roll < 0.91:
                return "no_show", False
            if roll < 0.98:
                return "cancelled", self.rng.random() < 0.3
            return "rejected", False
        if end <= self.anchor_s:
            if roll < 0.93:
                return "confirmed", False
            if roll < 0.98:
                return "cancelled", self.rng.random() < 0.3
            return "rejected", False
        if roll < 0.85:
            return "confirmed", False
        if roll < 0.93:
            return "pending", False
        return "cancelled", False

    def _booker(self, instrument: dict) -> tuple[int, int, int]:
        own = self.users_by_org.get(instrument["org_id"])
        if own and self.rng.random() < 0.7:
            return self.rng.choice(own)
        return self.rng.choice(self.users)

    def bookings(self) -> None:
        """Bookings stream into their COPY as they are made (the server indexes them meanwhile); the rest follow."""
        self.sessions, self.items, self.records, self.downtimes = [], [], [], []
        self.charge_sources = []  # (item id, instrument, user, lab, start, unit, quantity, is_internal)
        # The first ids are read now: while the COPY runs, this connection takes no other statement.
        first_ids = [next_id(model) for model in (Booking, UsageSession, BillableItem, ServiceRecord, Downtime)]
        self.loader.load(Booking, [
            "id", "instrument_id", "user_id", "charged_lab_id", "start", "end", "blocked_until", "state", "purpose",
            "is_internal", "uid", "sequence", "created_at", "updated_at", "cancelled_at", "late_cancellation",
            "cancelled_by_id"], self._booking_rows(*first_ids))
        self.loader.load(Downtime, ["id", "instrument_id", "start", "end", "kind", "reason"], self.downtimes)
        self.loader.load(UsageSession, ["id", "instrument_id", "user_id", "booking_id", "start", "end", "source",
                                        "external_ref", "samples", "created_at"], self.sessions)
        self.sessions = None
        self.loader.load(BillableItem, [
            "id", "booking_id", "session_id", "instrument_id", "user_id", "lab_id", "is_internal", "kind",
            "charge_mode", "unit", "quantity", "booked_minutes", "used_minutes", "samples", "service_start",
            "service_end", "state", "created_at", "updated_at"], self.items)
        self.items = None
        self.loader.load(ServiceRecord, [
            "id", "item_id", "instrument_id", "user_id", "applicant_organization_id", "is_internal", "direction",
            "start", "end", "hours", "samples", "created_at"], self.records)
        self.records = self.downtimes = None

    def _booking_rows(self, booking_id: int, session_id: int, item_id: int, record_id: int,
                      downtime_id: int) -> Iterator[tuple]:
        """Yield each booking row; its sessions, items, records and the downtimes go to the lists on ``self``."""
        rng = self.rng
        sessions, items, records, downtimes = self.sessions, self.items, self.records, self.downtimes
        ts = self._datetime
        for instrument in self.instrument_rows:
            policy = instrument["policy"]
            rules = {"charge_mode": policy["charge_mode"], "min_charge_minutes": policy["min_charge_minutes"],
                     "rounding_minutes": policy["rounding_minutes"], "no_show_percent": 100,
                     "late_cancel_percent": 50}
            for start, end, blocked, kind in self._timeline(instrument):
                if kind == "downtime":
                    downtimes.append((downtime_id, instrument["id"], ts(start), ts(end), "planned", "年度维护 Service"))
                    downtime_id += 1
                    continue
                state, late = self._state(start, end)
                user_id, user_org, lab_id = self._booker(instrument)
                internal = user_org == instrument["org_id"]
                created = ts(start - rng.randint(1, 30) * DAY)
                cancelled_at = ts(start - (3600 if late else 5 * DAY)) if state == "cancelled" else None
                row = (
                    booking_id, instrument["id"], user_id, lab_id, ts(start), ts(end), ts(blocked), state,
                    "测试 Sample analysis", internal, uuid.UUID(int=rng.getrandbits(128), version=4), 0, created,
                    created, cancelled_at, late, cancelled_at and user_id,
                )
                used = 0
                samples = rng.randint(1, 12)
                reconciled = end <= self.open_month_start_s
                if state in ("completed", "confirmed") and end <= self.anchor_s and (
                        reconciled or rng.random() < 0.95):
                    roll = rng.random()
                    session_start = start + rng.randint(0, 10) * 60
                    if roll < 0.08:
                        session_end = end + rng.randint(20, 60) * 60
                    elif roll < 0.2:
                        session_end = max(session_start + 600, end - rng.randint(20, 60) * 60)
                    else:
                        session_end = end + rng.randint(-10, 10) * 60
                    open_session = not reconciled and rng.random() < 0.005
                    logger = rng.random() < 0.7
                    sessions.append((session_id, instrument["id"], user_id, booking_id if reconciled else None,
                                     ts(session_start), None if open_session else ts(session_end),
                                     "logger" if logger else "checkin", f"L{session_id}" if logger else None,
                                     samples, created))
                    used = (session_end - session_start) // 60
                    session_id += 1
                if reconciled and rng.random() < 0.03:  # unbooked use after the booking, reconciled already
                    unbooked_start = blocked + 1800
                    unbooked_end = unbooked_start + rng.randint(30, 90) * 60
                    sessions.append((session_id, instrument["id"], user_id, None, ts(unbooked_start),
                                     ts(unbooked_end), "checkin", None, samples, created))
                    quantity = billable_quantity(kind="unbooked", booked_minutes=0,
                                                 used_minutes=(unbooked_end - unbooked_start) // 60, samples=samples,
                                                 **rules)
                    items.append((item_id, None, session_id, instrument["id"], user_id, lab_id, internal, "unbooked",
                                  policy["charge_mode"], quantity.unit, quantity.quantity, 0,
                                  (unbooked_end - unbooked_start) // 60, samples, ts(unbooked_start),
                                  ts(unbooked_end), "open", created, created))
                    records.append(self._record(record_id, item_id, instrument, user_id, user_org, internal,
                                                unbooked_start, unbooked_end, (unbooked_end - unbooked_start) // 60,
                                                samples))
                    self.charge_sources.append((item_id, instrument, user_id, lab_id, unbooked_start, quantity,
                                                internal))
                    item_id += 1
                    record_id += 1
                    session_id += 1
                elif not reconciled and end <= self.anchor_s and rng.random() < 0.03:  # unbooked, open month
                    unbooked_start = blocked + 1800
                    sessions.append((session_id, instrument["id"], user_id, None, ts(unbooked_start),
                                     ts(unbooked_start + rng.randint(30, 90) * 60), "checkin", None, samples, created))
                    session_id += 1
                billable = {"completed": "booking", "no_show": "no_show"}.get(state)
                if state == "cancelled" and late:
                    billable = "late_cancel"
                if reconciled and billable:
                    booked = (end - start) // 60
                    quantity = billable_quantity(kind=billable, booked_minutes=booked, used_minutes=used,
                                                 samples=samples if used else 0, **rules)
                    items.append((item_id, booking_id, None, instrument["id"], user_id, lab_id, internal, billable,
                                  policy["charge_mode"], quantity.unit, quantity.quantity, booked, used,
                                  samples if used else 0, ts(start), ts(end), "open", created, created))
                    if billable == "booking":
                        records.append(self._record(record_id, item_id, instrument, user_id, user_org, internal,
                                                    start, end, used or booked, samples))
                        record_id += 1
                    self.charge_sources.append((item_id, instrument, user_id, lab_id, start, quantity, internal))
                    item_id += 1
                yield row
                booking_id += 1

    def _record(self, record_id, item_id, instrument, user_id, user_org, internal, start, end, minutes, samples):
        ts = self._datetime
        return (record_id, item_id, instrument["id"], user_id, user_org, internal, "research", ts(start), ts(end),
                (Decimal(minutes) / 60).quantize(Decimal("0.01")), samples, ts(end))

    @staticmethod
    def _datetime(seconds: int) -> dt.datetime:
        return EPOCH + dt.timedelta(seconds=seconds)

    # --- billing, when it is installed ---------------------------------------------------------------

    def billing(self) -> None:
        try:
            account_model = apps.get_model("billing", "BillingAccount")
            card_model, rate_model = apps.get_model("billing", "RateCard"), apps.get_model("billing", "Rate")
            charge_model = apps.get_model("billing", "Charge")
        except LookupError:
            self.stdout.write("  billing is not installed: no accounts, rate cards or charges")
            return
        account_id, card_id, rate_id = next_id(account_model), next_id(card_model), next_id(rate_model)
        accounts = {}
        account_rows = []
        for lab_id, org_id, _district in self.labs:
            accounts[lab_id] = (account_id, org_id)
            account_rows.append((account_id, "cost_centre", org_id, lab_id, f"CC-{lab_id}", f"实验室{lab_id}成本中心",
                                 "市科技创新专项" if self.rng.random() < 0.3 else "", self.now))
            account_id += 1
        self.loader.load(account_model, ["id", "kind", "organization_id", "lab_id", "number", "name",
                                         "funding_programme", "created_at"], account_rows)
        card_rows, rate_rows = [], []
        valid_from = (self.anchor - dt.timedelta(days=int(self.years * 365) + 90)).date()
        for instrument in self.instrument_rows:
            card_rows.append((card_id, instrument["id"], valid_from, self.now))
            for user_class, factor in (("internal", 1), ("academic", Decimal("1.5")), ("industry", 2)):
                rate_rows.append((rate_id, card_id, user_class, "hour", instrument["price"] * factor))
                rate_id += 1
            instrument["card_id"] = card_id
            card_id += 1
        self.loader.load(card_model, ["id", "instrument_id", "valid_from", "created_at"], card_rows)
        self.loader.load(rate_model, ["id", "card_id", "user_class", "unit", "price"], rate_rows)
        charge_id = next_id(charge_model)
        newest = sorted(self.charge_sources, key=lambda source: source[4], reverse=True)[: self.charge_limit]
        org_kind = {org_id: kind for org_id, kind, _district in self.orgs}
        rows = []
        for item_id, instrument, user_id, lab_id, start, quantity, internal in newest:
            account = accounts.get(lab_id)
            if account is None:
                continue
            user_class = "internal" if internal else (
                "industry" if org_kind.get(account[1]) == "company" else "academic")
            factor = {"internal": 1, "academic": Decimal("1.5"), "industry": 2}[user_class]
            hours = (Decimal(quantity.quantity) / 60).quantize(Decimal("0.0001")) if quantity.unit == "hour" else \
                Decimal(quantity.quantity)
            price = instrument["price"] * factor
            amount = (hours * price).quantize(Decimal("0.01"))
            service_start = self._datetime(start)
            local = service_start.astimezone(SHANGHAI)
            rows.append((charge_id, "usage", item_id, account[0], instrument["org_id"], instrument["id"], user_id,
                         f"{local:%Y-%m}", service_start, user_class, quantity.unit, hours,
                         quantity.quantity if quantity.unit == "hour" else 0, instrument["card_id"], price, amount,
                         self.now))
            charge_id += 1
        self.loader.load(charge_model, ["id", "kind", "item_id", "account_id", "provider_id", "instrument_id",
                                        "user_id", "period", "service_start", "user_class", "unit", "quantity",
                                        "minutes", "rate_card_id", "unit_price", "amount", "created_at"], rows)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE usage_billableitem SET state = 'billed' WHERE id IN "
                           "(SELECT item_id FROM billing_charge WHERE item_id IS NOT NULL) AND state = 'open'")


class Command(BaseCommand):
    help = "Fill the database with a realistic city (for benchmarks). Refuses a database with data unless --force."

    def add_arguments(self, parser):
        parser.add_argument("--scale", choices=sorted(SCALES), default="full",
                            help="preset: quick (300 instruments, 3 months) or full (10,000 instruments, 3 years)")
        parser.add_argument("--instruments", type=int, help="how many instruments (overrides the scale)")
        parser.add_argument("--years", type=float, help="how many years of history (overrides the scale)")
        parser.add_argument("--bookings-per-year", type=float,
                            help="bookings per instrument and year in the history (default 67: ~2,000,000 at full)")
        parser.add_argument("--busy-month", type=int,
                            help="bookings per instrument in the last, not yet reconciled month (default 50)")
        parser.add_argument("--charges", type=int, help="at most this many charges (default 1,000,000)")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--anchor", help="the city's 'today' (YYYY-MM-DD, UTC); default: today")
        parser.add_argument("--force", action="store_true", help="add to a database that already holds data")

    def handle(self, *args, **options):
        scale = SCALES[options["scale"]]
        if not options["force"] and (User.objects.exists() or Instrument.objects.exists() or
                                     Booking.objects.exists()):
            raise CommandError("This database already holds people, instruments or bookings: generate_city only "
                               "fills an empty (benchmark) database. Use --force to add a city anyway.")
        anchor_day = dt.date.fromisoformat(options["anchor"]) if options["anchor"] else timezone.now().date()
        anchor = dt.datetime.combine(anchor_day, dt.time(), tzinfo=UTC)
        loader = Loader(self.stdout, now=anchor)
        city = City(
            rng=random.Random(options["seed"]),  # noqa: S311 - reproducible data, not secrets
            loader=loader, stdout=self.stdout,
            instruments=options["instruments"] or scale["instruments"],
            years=options["years"] if options["years"] is not None else scale["years"],
            history_rate=options["bookings_per_year"] or scale["history_rate"],
            busy_month=options["busy_month"] if options["busy_month"] is not None else scale["busy_month"],
            charges=options["charges"] if options["charges"] is not None else scale["charges"], anchor=anchor,
        )
        started = time.monotonic()
        self.stdout.write(f"generating a city of {city.instrument_count:,} instruments over {city.years:g} years "
                          f"(seed {options['seed']}, anchor {anchor_day}) on {connection.vendor}")
        with transaction.atomic():
            deferred_checks = self._skip_row_triggers()
            city.people()
            city.instruments()
            dropped = self._drop_indexes(BULK_TABLES)
            loader.frozen = self._truncate_if_empty(BULK_TABLES)
            city.bookings()
            city.billing()
            if deferred_checks:
                self._verify_foreign_keys()
            self._reset_sequences()
        self._rebuild_indexes(dropped)
        # What the daily task keeps in production: every instrument's opening windows (catalog.windows).
        loader.counts["catalog.OpeningWindow"] = refresh_opening_windows()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        total = sum(loader.counts.values())
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(
            f"city ready: {total:,} rows in {elapsed:.0f} s ({total / max(elapsed, 1e-9):,.0f} rows/s)"))
        self.summary = {"rows": dict(loader.counts), "seconds": round(elapsed, 1), "anchor": anchor.isoformat(),
                        "instruments": city.instrument_count, "years": city.years, "seed": options["seed"]}

    def _drop_indexes(self, tables: Sequence[str]) -> list[str]:
        """PostgreSQL: drop the big tables' secondary indexes and unique constraints before the load.

        Building a B-tree once over all rows is many times faster than updating it per row.
        Returns the statements that put them back (``_rebuild_indexes``). The exclusion constraint
        (``booking_no_overlap``, GiST) stays: a GiST build inserts row by row anyway, and with the
        bookings streamed into their COPY as they are generated, the server checks and indexes
        each one on its own core while this process makes the next (a rebuild afterwards ran
        alone for minutes). Every booking is still checked against every other as it lands.
        """
        if connection.vendor != "postgresql":
            return []
        dropped = []
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute("SELECT to_regclass(%s)", [table])
                if cursor.fetchone()[0] is None:
                    continue
                cursor.execute(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'u'", [table])
                for name, definition in cursor.fetchall():
                    dropped.append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
                    cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
                cursor.execute(
                    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT EXISTS "
                    "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)", [table])
                for name, definition in cursor.fetchall():
                    dropped.append(definition)
                    cursor.execute(f"DROP INDEX {name}")
        return dropped

    def _truncate_if_empty(self, tables: Sequence[str]) -> set[str]:
        """PostgreSQL: truncate the big tables in this transaction when they, and every table that
        refers to them, are empty; returns them. COPY can then write their rows frozen (``FREEZE``):
        already visible to all and marked so, as a city that autovacuum has been over would be.
        Otherwise the first reads after the load (the benchmarks') would each write the pages again
        to set hint bits. A database with rows in any of those tables (``--force``) is left as is.
        """
        if connection.vendor != "postgresql":
            return set()
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH RECURSIVE hit(rel) AS (SELECT to_regclass(name)::oid FROM unnest(%s::text[]) AS name "
                "UNION SELECT c.conrelid FROM pg_constraint c JOIN hit ON c.confrelid = hit.rel "
                "WHERE c.contype = 'f') SELECT rel::regclass::text FROM hit WHERE rel IS NOT NULL", [list(tables)])
            touched = [name for (name,) in cursor.fetchall()]
            for name in touched:
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {name})")  # noqa: S608 - names from the catalog
                if cursor.fetchone()[0]:
                    return set()
            cursor.execute(f"TRUNCATE {', '.join(touched)}")
        return {name.strip('"') for name in touched} & set(tables)

    def _rebuild_indexes(self, statements: list[str]) -> None:
        """Build the dropped indexes and constraints again, on one connection per core, after the commit.

        An index build is single-threaded (B-tree mostly), so two builds at once use both cores.
        Each connection takes the next statement when it is done, in the order they were dropped. The
        rows are committed by then: if a build fails (a unique key made twice), the command says
        so and the database is not a usable city (the benchmark runner makes a new one on its
        next run).
        """
        if not statements:
            return
        import queue
        import threading

        from django.db import connections

        started = time.monotonic()
        if connection.in_atomic_block:
            # Called inside a caller's transaction: other connections could not see the rows (and
            # would wait for this one's locks), so build here, one after the other.
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
            self.stdout.write(f"  {len(statements)} indexes and constraints rebuilt in "
                              f"{time.monotonic() - started:.1f} s")
            return
        pending: queue.SimpleQueue[str] = queue.SimpleQueue()
        for statement in statements:
            pending.put(statement)
        failures: list[str] = []

        def work() -> None:
            try:
                with connections["default"].cursor() as cursor:
                    cursor.execute("SET maintenance_work_mem = '512MB'")
                    cursor.execute("SET max_parallel_maintenance_workers = 0")  # the other thread has the core
                    while True:
                        try:
                            statement = pending.get_nowait()
                        except queue.Empty:
                            return
                        try:
                            cursor.execute(statement)
                        except Exception as error:  # noqa: BLE001 - reported below, with its statement
                            failures.append(f"{statement}: {error}")
            finally:
                connections["default"].close()

        workers = [threading.Thread(target=work) for _ in range(max(1, min(4, os.cpu_count() or 1)))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise CommandError("the rows are loaded but these indexes or constraints could not be built; "
                               "this database is not a usable city: " + "; ".join(failures))
        self.stdout.write(f"  {len(statements)} indexes and constraints rebuilt in {time.monotonic() - started:.1f} s "
                          f"on {len(workers)} connections")

    def _skip_row_triggers(self) -> bool:
        """On PostgreSQL as a superuser, skip the per-row foreign key triggers for this transaction.

        Django's foreign keys are DEFERRABLE INITIALLY DEFERRED, so each COPYed row queues one check
        per key until commit: millions of single-row lookups. The generator makes its keys itself;
        ``_verify_foreign_keys`` then checks every key set-based (one anti-join per key) before
        commit. Check and exclusion constraints are not triggers: they still test every row.
        """
        if connection.vendor != "postgresql":
            return False
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if not cursor.fetchone()[0]:
                return False
            cursor.execute("SET LOCAL session_replication_role = replica")
        return True

    def _verify_foreign_keys(self) -> None:
        started = time.monotonic()
        checked = 0
        with connection.cursor() as cursor:
            for model in self._touched_models():
                for field in model._meta.concrete_fields:
                    if not field.is_relation or not field.db_constraint:
                        continue
                    child, parent = model._meta.db_table, field.related_model._meta.db_table
                    column, target = field.column, field.target_field.column
                    cursor.execute(
                        f'SELECT count(*) FROM "{child}" c WHERE c."{column}" IS NOT NULL AND NOT EXISTS '  # noqa: S608
                        f'(SELECT 1 FROM "{parent}" p WHERE p."{target}" = c."{column}")')
                    missing = cursor.fetchone()[0]
                    checked += 1
                    if missing:
                        raise CommandError(f"{missing} rows of {child}.{column} point at no {parent} row")
            cursor.execute("SET LOCAL session_replication_role = origin")
        self.stdout.write(f"  {checked} foreign keys checked set-based in {time.monotonic() - started:.1f} s")

    def _touched_models(self) -> list:
        touched = [Organization, Lab, User, Membership, Instrument, BookingPolicy, OpeningRule, Downtime, Booking,
                   UsageSession, BillableItem, ServiceRecord]
        for label in ("billing.BillingAccount", "billing.RateCard", "billing.Rate", "billing.Charge"):
            try:
                touched.append(apps.get_model(label))
            except LookupError:
                pass
        return touched

    def _reset_sequences(self) -> None:
        touched = self._touched_models()
        statements = connection.ops.sequence_reset_sql(no_style(), touched)
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def expected_bookings(instruments: int, years: float, per_year: float = 67.0, busy_month: int = 50) -> int:
    """A rough count, for the help text and the harness's sanity checks."""
    return math.floor(instruments * (years * per_year + busy_month))

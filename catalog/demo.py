"""Demo instruments for ``seed_demo``: about 150 across the demo labs, a few deliberately non-compliant.

Everything goes through the services, as the lab's manager would do it, so the audit trail of the
demo reads like real use. Idempotent: an instrument is keyed by its organization and asset number
and a second run leaves existing ones alone. Dates are fixed, so the compliance report flags the
same handful every time: a mandatory instrument left as a draft, one shared internally only, one
listed late, one with an incomplete record; one more carries an approved exemption and is not flagged.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from instrumentshare.accounts import services as accounts
from instrumentshare.accounts.demo import DEMO_PASSWORD
from instrumentshare.accounts.models import Lab, Membership, User

from . import services
from .demo_data import HOURS, INSTRUMENTS, KINDS, LAB_MANAGERS, LAB_SITES, POLICIES
from .models import Instrument

ZONE = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai has no daylight saving time
FUNDING = {"c": "funded_central", "l": "funded_local", "o": "funded_own", "x": "funded_other"}
SUBJECT_BY_LAB = {"fio-ship": "170", "iocas-core": "170", "laoshan-hpc": "520"}
EXEMPTION_REASONS = {
    "unpublish": "该设备已运行超过十五年，主要部件老化、厂家已停止维修支持，已提交报废申请，申请暂停对外开放共享。",
    "not_shared": "该平台承担国家重点研发计划保密项目计算任务，项目执行期内申请暂不对外开放，项目结束后恢复共享。",
}


def _manager_for(lab: Lab) -> User:
    """The demo's manager of a lab: labmanager/labmanager2 where the accounts demo made them, else mgr-<code>."""
    username = LAB_MANAGERS.get(lab.code, f"mgr-{lab.code}")
    user = User.objects.filter(username=username).first()
    if user is None:
        contact = LAB_SITES[lab.code][3]
        user = accounts.create_user(actor=None, username=username, password=DEMO_PASSWORD,
                                    email=f"{username}@demo.instrumentshare.cn",
                                    full_name=f"{contact}（{lab.name_zh}）", organization=lab.organization)
    if not Membership.objects.filter(user=user, lab=lab, role=Membership.Role.MANAGER).exists():
        accounts.set_membership(actor=None, lab=lab, user=user, role=Membership.Role.MANAGER)
    return user


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=ZONE)


def _fields(lab: Lab, index: int, row: tuple) -> dict:
    (_lab, category, name_zh, name_en, manufacturer, country, model, value_wan, purchased, funding, kind,
     options) = row
    subject, _hours, _policy, specifications, functions, service, fee = KINDS[kind]
    prefix, district, address, contact, phone, email = LAB_SITES[lab.code]
    purchase_date = dt.date.fromisoformat(purchased)
    fields = {
        "name_zh": name_zh, "name_en": name_en, "asset_number": f"{prefix}-{purchase_date.year}-{index:03d}",
        "category_id": category, "subject_code": SUBJECT_BY_LAB.get(lab.code, subject),
        "affiliation": "analysis_center" if lab.organization.kind != "company" else "other",
        "original_value": Decimal(value_wan) * 10000, "country": country, "manufacturer": manufacturer,
        "model_number": model, "purchase_date": purchase_date,
        "acceptance_date": purchase_date + dt.timedelta(days=3 + index % 5),
        "purpose": "general", "specifications": specifications, "main_functions": functions,
        "service_content": service, "fee_standard": fee,
        "user_requirements": "首次使用须参加培训并通过考核；请按预约时间上机，爱护仪器，如实填写使用记录。",
        "district": district, "address": address, "room": f"{100 + index}", "contact_name": contact,
        "contact_phone": phone, "contact_email": email, "status": options.get("status", "normal"),
        "customs_supervised": country != "中国" and purchase_date.year >= 2020 and Decimal(value_wan) >= 500,
    }
    for letter in funding:
        fields[FUNDING[letter]] = True
    for name in options.get("missing", ()):
        fields[name] = None if name.endswith("_date") else ""
    return fields


def _create(lab: Lab, manager: User, index: int, row: tuple, people: dict[str, User], now: dt.datetime) -> Instrument:
    kind, options = row[10], row[11]
    _subject, hours, policy, *_texts = KINDS[kind]
    fields = _fields(lab, index, row)
    instrument = services.create_instrument(actor=manager, lab=lab, share_mode=options.get("share", "external"),
                                            policy=dict(POLICIES[policy]), opening_hours=HOURS[hours], **fields)
    if not options.get("draft"):
        published = (dt.date.fromisoformat(options["published"]) if "published" in options
                     else (fields["acceptance_date"] or fields["purchase_date"]) + dt.timedelta(days=2))
        services.publish(actor=manager, instrument_id=instrument.pk, now=_at(published))
    if "exempt" in options:
        change = services.request_listing_change(actor=manager, instrument_id=instrument.pk, kind=options["exempt"],
                                                 justification=EXEMPTION_REASONS[options["exempt"]])
        services.decide_listing_change(actor=people["bureau"], request_id=change.pk, approve=True,
                                       note="同意。设备报废处置完成后请及时更新状态。")
    if "pending" in options:
        services.request_listing_change(actor=manager, instrument_id=instrument.pk, kind=options["pending"],
                                        justification=EXEMPTION_REASONS[options["pending"]])
    _activity(instrument, manager, options, people, now)
    return instrument


def _activity(instrument: Instrument, manager: User, options: dict, people: dict[str, User], now: dt.datetime) -> None:
    """A little life on a few instruments: maintenance, a repair, a trained user, a training request."""
    today = timezone.localtime(now, instrument.zone).date()
    if options.get("downtime") == "planned":
        day = today + dt.timedelta(days=7 - today.weekday() + 1)  # Tuesday next week
        services.add_downtime(actor=manager, instrument_id=instrument.pk, start=_at(day, 9), end=_at(day, 17),
                              kind="planned", reason="年度维护保养（厂家工程师上门）")
    elif options.get("downtime") == "unplanned":
        services.add_downtime(actor=manager, instrument_id=instrument.pk, start=now - dt.timedelta(days=2),
                              end=now + dt.timedelta(days=14), kind="unplanned", reason="电子枪故障，等待备件更换")
    for username in options.get("qualified", ()):
        services.grant_qualification(actor=manager, instrument_id=instrument.pk, user=people[username],
                                     note="完成上机培训与考核")
    for username in options.get("training", ()):
        services.request_training(actor=people[username], instrument_id=instrument.pk,
                                  message="课题需要做 STEM-EDS 面分布，申请参加培训。")


@transaction.atomic
def seed(stdout=None) -> dict:
    now = timezone.now()
    labs = {lab.code: lab for lab in Lab.objects.select_related("organization").filter(code__in=LAB_SITES)}
    people = {user.username: user for user in User.objects.filter(username__in=["bureau", "researcher", "researcher2"])}
    created = existing = 0
    counters: dict[str, int] = {}
    managers: dict[str, User] = {}
    for row in INSTRUMENTS:
        lab = labs.get(row[0])
        if lab is None:
            continue
        counters[lab.code] = index = counters.get(lab.code, 0) + 1
        asset_number = _fields(lab, index, row)["asset_number"]
        if Instrument.objects.filter(organization_id=lab.organization_id, asset_number=asset_number).exists():
            existing += 1
            continue
        manager = managers.get(lab.code) or managers.setdefault(lab.code, _manager_for(lab))
        _create(lab, manager, index, row, people, now)
        created += 1
    if stdout:
        stdout.write(f"demo instruments: {created} added, {existing} already there")
    return {"created": created, "existing": existing}

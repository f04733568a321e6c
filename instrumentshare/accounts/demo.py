"""Demo people and organizations: a believable Qingdao sharing platform.

The institutions are real Qingdao research organizations; the companies are made up. All
credit codes are generated (valid check characters, not real registrations). Idempotent:
everything is keyed by a natural key and updated in place on a second run.
"""

from __future__ import annotations

from django.db import transaction

from instrumentshare.audit.services import record

from .credit_code import check_character
from .models import Lab, Membership, Organization, OrganizationRole, User

DEMO_PASSWORD = "demo-2026"

ORGANIZATIONS = [
    # key, name_zh, name_en, short, kind, district
    ("ouc", "中国海洋大学", "Ocean University of China", "OUC", "university", "崂山区"),
    ("qdu", "青岛大学", "Qingdao University", "QDU", "university", "崂山区"),
    ("sdust", "山东科技大学", "Shandong University of Science and Technology", "SDUST", "university", "黄岛区"),
    ("qust", "青岛科技大学", "Qingdao University of Science and Technology", "QUST", "university", "崂山区"),
    ("iocas", "中国科学院海洋研究所", "Institute of Oceanology, CAS", "IOCAS", "institute", "市南区"),
    ("qibebt", "中国科学院青岛生物能源与过程研究所", "Qingdao Institute of Bioenergy and Bioprocess Technology, CAS",
     "QIBEBT", "institute", "崂山区"),
    ("fio", "自然资源部第一海洋研究所", "First Institute of Oceanography, MNR", "FIO", "institute", "崂山区"),
    ("laoshan", "崂山实验室", "Laoshan Laboratory", "Laoshan Lab", "institute", "崂山区"),
    ("bluesea", "青岛蓝海生物科技有限公司", "Qingdao Blue Sea Biotech Co., Ltd.", "Blue Sea Bio", "company", "城阳区"),
    ("hailan", "青岛海澜新材料有限公司", "Qingdao Hailan New Materials Co., Ltd.", "Hailan Materials", "company",
     "黄岛区"),
    ("zhijian", "青岛智检仪器技术有限公司", "Qingdao Zhijian Instrument Technology Co., Ltd.", "Zhijian", "company",
     "李沧区"),
    ("bureau", "青岛市科学技术局", "Qingdao Municipal Science and Technology Bureau", "QSTB", "government", "市南区"),
]

LABS = [
    # code, organization key, name_zh, name_en
    ("ouc-emc", "ouc", "电子显微镜中心", "Electron Microscopy Center"),
    ("ouc-marine-chem", "ouc", "海洋化学分析测试平台", "Marine Chemistry Analysis Platform"),
    ("qdu-bio", "qdu", "生物医学分析测试中心", "Biomedical Analysis Center"),
    ("sdust-materials", "sdust", "材料表征实验室", "Materials Characterization Lab"),
    ("qust-polymer", "qust", "高分子材料分析中心", "Polymer Analysis Center"),
    ("iocas-core", "iocas", "海洋科学公共技术平台", "Marine Science Core Facility"),
    ("qibebt-omics", "qibebt", "单细胞与组学平台", "Single-Cell and Omics Platform"),
    ("fio-ship", "fio", "科考船舶设备中心", "Research Vessel Equipment Center"),
    ("laoshan-hpc", "laoshan", "高性能计算中心", "High Performance Computing Center"),
    ("bluesea-rd", "bluesea", "研发实验室", "R&D Laboratory"),
]

# username, full name, organization key, lab memberships [(lab code, role)], finance org, admin flag, role label
PEOPLE = [
    ("researcher", "李研究 Li Yan", "ouc", [("ouc-marine-chem", "member")], None, False, "researcher"),
    ("researcher2", "王学者 Wang Xue", "qdu", [("qdu-bio", "member")], None, False, "another researcher"),
    ("labmanager", "张主任 Zhang Zhu", "ouc", [("ouc-emc", "manager")], None, False, "lab manager (OUC EM center)"),
    ("labmanager2", "陈老师 Chen Lao", "iocas", [("iocas-core", "manager")], None, False,
     "lab manager of another lab (IOCAS)"),
    ("finance", "刘会计 Liu Kuai", "ouc", [], "ouc", False, "finance officer (OUC)"),
    ("finance2", "赵财务 Zhao Cai", "iocas", [], "iocas", False, "finance officer elsewhere (IOCAS)"),
    ("company", "周经理 Zhou Jing", "bluesea", [("bluesea-rd", "member")], None, False, "company user (Blue Sea Bio)"),
    ("bureau", "孙科长 Sun Ke", "bureau", [], None, True, "platform administrator (science bureau)"),
]


def logins() -> list[tuple[str, str, str]]:
    rows = [(label, username, DEMO_PASSWORD) for username, _n, _o, _l, _f, _a, label in PEOPLE]
    rows.append(("Django admin (superuser)", "admin", DEMO_PASSWORD))
    return rows


@transaction.atomic
def seed(stdout=None) -> dict:
    organizations: dict[str, Organization] = {}
    for index, (key, name_zh, name_en, short, kind, district) in enumerate(ORGANIZATIONS, start=1):
        prefix = "91" if kind == "company" else ("11" if kind == "government" else "12")
        body = f"{prefix}370200{index:09d}"
        organization, created = Organization.objects.update_or_create(
            name_zh=name_zh,
            defaults={
                "name_en": name_en, "short_name": short, "kind": kind, "district": district,
                "address": f"山东省青岛市{district}", "credit_code": body + check_character(body),
                "contact_email": f"contact@{key}.example.cn",
            },
        )
        if created:
            record(actor=None, action="organization.created", target=organization, after={"name_zh": name_zh},
                   reason="demo data")
        organizations[key] = organization

    labs: dict[str, Lab] = {}
    for code, org_key, name_zh, name_en in LABS:
        organization = organizations[org_key]
        lab, created = Lab.objects.update_or_create(
            code=code,
            defaults={"organization": organization, "name_zh": name_zh, "name_en": name_en,
                      "district": organization.district, "address": organization.address,
                      "contact_email": f"{code}@{org_key}.example.cn"},
        )
        if created:
            record(actor=None, action="lab.created", target=lab, after={"code": code}, reason="demo data")
        labs[code] = lab

    people: dict[str, User] = {}
    for username, full_name, org_key, memberships, finance_org, is_admin, _label in PEOPLE:
        user, created = User.objects.get_or_create(username=username)
        user.full_name = full_name
        user.email = f"{username}@demo.instrumentshare.cn"
        user.organization = organizations[org_key]
        user.is_platform_admin = is_admin
        user.set_password(DEMO_PASSWORD)
        user.save()
        if created:
            record(actor=None, action="user.created", target=user, after={"username": username}, reason="demo data")
        for lab_code, role in memberships:
            Membership.objects.update_or_create(user=user, lab=labs[lab_code], defaults={"role": role})
        if finance_org:
            OrganizationRole.objects.get_or_create(
                user=user, organization=organizations[finance_org], role=OrganizationRole.Role.FINANCE
            )
        people[username] = user

    admin, _created = User.objects.get_or_create(username="admin")
    admin.is_staff = admin.is_superuser = True
    admin.full_name = "Administrator"
    admin.organization = organizations["bureau"]
    admin.set_password(DEMO_PASSWORD)
    admin.save()
    people["admin"] = admin
    if stdout:
        stdout.write(f"demo people: {len(organizations)} organizations, {len(labs)} labs, {len(people)} logins")
    return {"organizations": organizations, "labs": labs, "people": people}

"""Everyday queries against the demo catalog: what people type finds what they mean.

Synonyms and abbreviations come from ``catalog/data/search_synonyms.json``; short Latin
abbreviations match whole words; a long Chinese word with one slip still finds its instrument.
"""

import pytest
from django.contrib.auth.models import AnonymousUser

from catalog import demo as catalog_demo
from catalog import queries, search_text
from instrumentshare.accounts import demo as accounts_demo

pytestmark = pytest.mark.django_db

# query -> names that must be among the results, and names that must not be.
EVERYDAY = [
    ("电镜", {"场发射扫描电子显微镜", "透射电子显微镜", "冷冻透射电子显微镜"}, {"原子力显微镜"}),
    ("扫描电镜", {"场发射扫描电子显微镜", "台式扫描电子显微镜"}, {"透射电子显微镜"}),
    ("SEM", {"场发射扫描电子显微镜", "冷场发射扫描电子显微镜"}, {"透射电子显微镜"}),
    ("透射电镜", {"透射电子显微镜", "场发射透射电子显微镜"}, {"场发射扫描电子显微镜"}),
    ("TEM", {"透射电子显微镜", "冷冻透射电子显微镜"}, {"场发射扫描电子显微镜"}),
    ("冷冻电镜", {"冷冻透射电子显微镜"}, {"台式扫描电子显微镜"}),
    ("XRD", {"X射线衍射仪", "单晶X射线衍射仪", "高分辨X射线衍射仪"}, {"X射线光电子能谱仪"}),
    ("xrd", {"X射线衍射仪"}, set()),
    ("XPS", {"X射线光电子能谱仪"}, {"X射线衍射仪"}),
    ("XRF", {"波长色散X射线荧光光谱仪"}, set()),
    ("能谱", {"X射线能谱仪", "X射线光电子能谱仪"}, set()),
    ("核磁", {"400兆核磁共振波谱仪", "600兆超导核磁共振波谱仪", "500兆核磁共振波谱仪"}, set()),
    ("NMR", {"400兆核磁共振波谱仪", "600兆超导核磁共振波谱仪"}, {"电子顺磁共振波谱仪"}),
    ("EPR", {"电子顺磁共振波谱仪"}, {"400兆核磁共振波谱仪"}),
    ("共聚焦", {"激光扫描共聚焦显微镜", "激光共聚焦显微镜", "转盘共聚焦显微镜"}, set()),
    ("AFM", {"原子力显微镜"}, set()),
    ("FIB", {"聚焦离子束-扫描电镜双束系统"}, set()),
    ("ICP-MS", {"电感耦合等离子体质谱仪"}, {"电感耦合等离子体发射光谱仪"}),
    ("气质联用", {"气相色谱-质谱联用仪"}, set()),
    ("GC-MS", {"气相色谱-质谱联用仪"}, set()),
    ("液质", {"三重四极杆液相色谱-质谱联用仪", "高分辨轨道阱液相色谱-质谱联用仪"}, set()),
    ("HPLC", {"高效液相色谱仪"}, set()),
    ("液相", {"高效液相色谱仪", "超高效液相色谱仪"}, set()),
    ("红外", {"傅里叶变换红外光谱仪", "红外显微成像系统"}, set()),
    ("FTIR", {"傅里叶变换红外光谱仪"}, set()),
    ("拉曼", {"显微共焦拉曼光谱仪", "单细胞拉曼分选仪"}, set()),
    ("热重", {"热重分析仪"}, set()),
    ("DSC", {"差示扫描量热仪"}, set()),
    ("BET", {"比表面及孔径分析仪"}, set()),
    ("流式", {"流式细胞仪", "流式细胞分选仪", "台式流式细胞仪"}, set()),
    ("qPCR", {"实时荧光定量PCR仪"}, {"微滴式数字PCR系统"}),
    ("PCR", {"实时荧光定量PCR仪", "微滴式数字PCR系统"}, set()),
    ("酶标仪", {"多功能酶标仪", "多功能微孔板检测仪"}, set()),
    ("测序", {"高通量测序仪", "纳米孔测序仪"}, set()),
    ("冻干机", {"冷冻干燥机"}, {"真空冷冻干燥机"}),  # the second is a draft: not shown to everyone
    ("CTD", {"温盐深剖面仪"}, set()),
    ("ADCP", {"声学多普勒流速剖面仪", "船载声学多普勒流速剖面仪"}, set()),
    ("多波束", {"全海深多波束测深系统", "浅水多波束测深系统"}, set()),
    ("超算", {"高性能计算集群"}, set()),
    ("GPU", {"GPU异构计算集群"}, set()),
    ("蔡司", {"场发射扫描电子显微镜", "三维X射线显微镜"}, set()),
    ("日立 电镜", {"冷场发射扫描电子显微镜", "透射电子显微镜"}, {"X射线衍射仪"}),
    ("布鲁克 核磁", {"400兆核磁共振波谱仪"}, {"X射线衍射仪"}),
    ("IC", {"离子色谱仪"}, {"激光扫描共聚焦显微镜", "原子力显微镜"}),  # IC is a word, not "mICroscope"
    ("扫描显微镜", {"场发射扫描电子显微镜"}, set()),  # one word missing: fuzzy
    ("核磁共震", {"400兆核磁共振波谱仪"}, set()),  # a homophone slip: fuzzy
    ("Bruker D8", {"X射线衍射仪", "单晶X射线衍射仪"}, {"400兆核磁共振波谱仪"}),
]


@pytest.fixture
def demo_catalog():
    accounts_demo.seed()
    catalog_demo.seed()


def test_everyday_queries_find_what_people_mean(demo_catalog):
    assert len(EVERYDAY) >= 30
    misses = []
    for text, wanted, unwanted in EVERYDAY:
        found = set(queries.search_instruments(AnonymousUser(), text=text).values_list("name_zh", flat=True))
        if not wanted <= found or found & unwanted:
            misses.append((text, sorted(wanted - found), sorted(found & unwanted)))
    assert misses == [], f"query, missing, unwanted: {misses}"


def test_nonsense_finds_nothing_even_with_fuzz(demo_catalog):
    assert not queries.search_instruments(AnonymousUser(), text="完全无关的词语").exists()
    assert not queries.search_instruments(AnonymousUser(), text="zzqx").exists()


def test_synonyms_are_data_every_group_has_two_terms_and_no_term_is_in_two_groups():
    seen = {}
    for group in search_text.synonym_groups():
        assert len(group) >= 2, group
        for term in group:
            assert term.casefold() not in seen, (term, seen.get(term.casefold()), group)
            seen[term.casefold()] = group


def test_an_abbreviation_is_replaced_only_as_a_whole_word():
    assert "X射线衍射仪测试" in search_text.alternatives("XRD测试")
    assert search_text.alternatives("ICP") == ["ICP"]  # IC inside ICP is no abbreviation here
    assert "透射电子显微镜" in search_text.alternatives("透射电镜")

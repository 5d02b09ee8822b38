"""A seeded, synthetic sample city: Hangzhou's industrial land, its firms and their output.

``generate(out_dir)`` writes every layer of the data contract (../shared/DATA_CONTRACT.md) the
way a planning bureau receives them, placed at Hangzhou's real district and zone centres, so that
each rule in DOMAIN_RULES.md has something to find. Same seed, scale and reference date give
byte-identical files (the DBF header date and the XLSX zip stamps are pinned, rows are sorted).

What it writes (``scale`` multiplies the counts of the big layers; numbers for scale 1):

* XZQ: the 13 districts with their 2021 codes; shapes are Voronoi cells of the district centres
  and of the platform centres (each seed labelled with its district), clipped to a buffered hull,
  so the districts tile the area and every platform centre lies in its own district.
* PT: 20 platforms: the 14 real zones of hangzhou_places.csv and 6 invented parks, rotated
  rectangles that never overlap. Written in EPSG:4490 with GBK text and *no* .cpg (the encoding
  is declared in manifest.toml only), as such files often arrive.
* ZL: the two corridors as buffers of a line through the corridor points (CXKC 3 km, CDZZ 3.5 km).
* PZ / GD / DK: each platform is laid out as a grid of blocks split by roads; each block is split
  into rectangular lots of 60-300 m. A block may be an approval (PZ, the block's rectangle);
  its lots are supplied (GD, the lot) or left unsupplied; supplied lots carry a surveyed parcel
  (DK, the lot or a slightly smaller one) unless they were supplied after the survey. Blocks
  that are not approvals hold older land: parcels with or without a supply record. About 15 %
  of parcels lie in small clusters scattered over the districts, away from the platforms.
* QY (XLSX), CC (GBK CSV), XM (UTF-8 CSV with BOM), BD and TJ (UTF-8 CSV).
* MB (UTF-8 CSV): targets for every district and platform in the latest two CC years, about
  half of the §7 ones met and half behind once computed (``_build_targets``, a random generator
  of its own, so the other layers are the same with or without it).

What it plants, relative to ``reference_date`` (listed in planted.json, computed from the data
written, so each list is exactly the set that the rule finds):

* supply records (DOMAIN_RULES §3): not yet due, overdue < 1 year, idle 1-2 years, idle >= 2
  years, partly developed and stopped for over a year, stopped for under a year, and "records
  disagree" (started on paper, footprint under 5 % on the parcel). Ordinary records are started
  or completed, with dates kept at least ~20 days away from every threshold.
* approvals fully, partly and not at all supplied (批而未供), of all ages.
* low efficiency: parcels with a plot ratio under the contract's floor (or 1.0), parcels used
  for something else (挪作他用) or idle (闲置), parcels whose firms pay under 5 万元/亩 in the last
  year; ordinary parcels are kept clear of those thresholds.
* evaluation: firms with very high and very low per-mu figures (clear A and D), among them
  paper, chemical, dyeing and building-material firms (backward capacity) with failed standards.
* linkage: firms whose DKBH is empty but whose GCJ-02 point lies in a parcel (found only after
  converting GCJ-02 to WGS84), firms 15-35 m outside a parcel (nearest within 50 m), parcels
  whose DZJGH is blank but whose supply polygon covers them (overlap), parcels shared by two
  firms (with and without declared YDMJ), firms on rented land (YDMJ, no parcel) and firms with
  neither (not evaluated).
* platforms: invented parks in main-urban districts far from any host (转为创新型), one 800 m
  from a national zone (整合托管型) and small remote ones without featured industries (逐步退出型).

RW (UTF-8 CSV) is the plan's own 任务分解表, copied from ``plan_tasks.csv`` beside this module: the
nine work items of 杭政办函〔2017〕127号 with their sub-tasks, units and deadlines, reconstructed
from the plan's headings (docs/TASKS.md), with statuses such that at the reference date some
tasks are done and some overdue. It does not depend on the seed, scale or reference date.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import Transformer

from gis.core.gcj02 import wgs84_to_gcj02
from gis.core.layers import M2_PER_MU, STORAGE_SRID
from gis.core.uscc import check_character

__all__ = ["generate", "DEFAULT_SEED", "DEFAULT_REFERENCE_DATE"]

DEFAULT_SEED = 20261128
DEFAULT_REFERENCE_DATE = date(2026, 6, 30)

MU_PER_M2 = 1 / M2_PER_MU  # 0.0015
TAX_PER_MU_FLOOR = 5.0  # 万元/亩, DOMAIN_RULES §3 default
HOST_DISTANCE_M = 2000.0  # DOMAIN_RULES §4 default

PLAN_TASKS = Path(__file__).with_name("plan_tasks.csv")  # RW: the plan's 任务分解表

_TO_GK = Transformer.from_crs("EPSG:4326", f"EPSG:{STORAGE_SRID}", always_xy=True)
_FROM_GK = Transformer.from_crs(f"EPSG:{STORAGE_SRID}", "EPSG:4326", always_xy=True)

# --------------------------------------------------------------------------------------------
# Places (from ../shared/hangzhou_places.csv, approximate centres, WGS84) and invented figures.
# --------------------------------------------------------------------------------------------

# code, name, lon, lat, main urban (ZCQ), weight for scattered parcels, GDP 2025 (亿元),
# industrial value added / GDP
_DISTRICTS = [
    ("330102", "上城区", 120.20, 30.27, 1, 0.2, 3300, 0.05),
    ("330105", "拱墅区", 120.15, 30.33, 1, 0.4, 2400, 0.08),
    ("330106", "西湖区", 120.08, 30.22, 1, 0.6, 2700, 0.06),
    ("330108", "滨江区", 120.20, 30.19, 1, 0.3, 2600, 0.35),
    ("330109", "萧山区", 120.33, 30.12, 1, 3.0, 2400, 0.33),
    ("330110", "余杭区", 119.95, 30.35, 1, 2.0, 3400, 0.18),
    ("330111", "富阳区", 119.90, 29.95, 0, 2.5, 1000, 0.36),
    ("330112", "临安区", 119.50, 30.20, 0, 1.5, 700, 0.35),
    ("330113", "临平区", 120.28, 30.43, 1, 2.5, 1100, 0.40),
    ("330114", "钱塘区", 120.48, 30.30, 1, 2.0, 1100, 0.50),
    ("330122", "桐庐县", 119.62, 29.80, 0, 1.2, 500, 0.35),
    ("330127", "淳安县", 118.90, 29.60, 0, 0.5, 300, 0.20),
    ("330182", "建德市", 119.30, 29.50, 0, 1.0, 450, 0.40),
]


@dataclass(frozen=True)
class _PlatformSpec:
    name: str
    level: str
    ptype: str
    district: str
    lon: float | None
    lat: float | None
    cells: int  # lots at scale 1 (before rounding up to whole blocks)
    side: float  # mean lot side, m
    tech: bool  # leans to electronics / software firms and innovation land
    tscy: str
    fmqd: str
    beside: str | None = None  # placed next to this platform ...
    gap: float = 0.0  # ... this many metres away


# fmt: off
_PLATFORMS = [
    _PlatformSpec("杭州经济技术开发区", "国家级", "经济技术开发区", "330114", 120.35, 30.3,
                  640, 125, False, "生物医药、智能制造、新一代信息技术", "22;2614;1713;1752"),
    _PlatformSpec("杭州高新技术产业开发区", "国家级", "高新技术产业开发区", "330108", 120.2, 30.19,
                  420, 105, True, "数字经济、集成电路、人工智能", "17;22;26;30"),
    _PlatformSpec("萧山经济技术开发区", "国家级", "经济技术开发区", "330109", 120.28, 30.17,
                  540, 125, False, "智能制造、汽车零部件、新材料", "22;1713;1752"),
    _PlatformSpec("余杭经济技术开发区", "国家级", "经济技术开发区", "330113", 120.33, 30.41,
                  480, 125, False, "高端装备、生物医药、新材料", "22;26"),
    _PlatformSpec("杭州钱塘高新技术产业开发区", "国家级", "高新技术产业开发区", "330114",
                  120.58, 30.28, 540, 150, False, "半导体、新能源汽车、航空航天", "17;22"),
    _PlatformSpec("杭州临空经济示范区", "省级", "工业园区", "330109", 120.43, 30.24,
                  260, 140, False, "航空物流、临空制造", "22;26;30"),
    _PlatformSpec("杭州未来科技城", "省级", "特色小镇", "330110", 119.99, 30.29,
                  320, 100, True, "数字经济、人工智能、生命健康", "17;22;26;30"),
    _PlatformSpec("紫金港科技城", "市级", "特色小镇", "330106", 120.08, 30.3,
                  190, 100, True, "数字经济、智能物联", "17;22;26;30"),
    _PlatformSpec("青山湖科技城", "省级", "工业园区", "330112", 119.8, 30.26,
                  290, 120, True, "高端装备、新材料、微电子", ""),
    _PlatformSpec("富阳经济技术开发区", "省级", "经济开发区", "330111", 119.93, 30.05,
                  370, 140, False, "通信器材、高端装备、新材料", "1713;1752"),
    _PlatformSpec("临安经济开发区", "省级", "经济开发区", "330112", 119.74, 30.23,
                  250, 135, False, "电子信息、绿色照明、汽车零部件", ""),
    _PlatformSpec("桐庐经济开发区", "省级", "经济开发区", "330122", 119.67, 29.78,
                  230, 140, False, "医疗器械、智能制造", "22"),
    _PlatformSpec("建德经济开发区", "省级", "经济开发区", "330182", 119.32, 29.5,
                  220, 160, False, "精细化工、新材料、通用航空", ""),
    _PlatformSpec("千岛湖经济开发区", "省级", "经济开发区", "330127", 119.05, 29.62,
                  120, 130, False, "食品饮料、生物医药", "22;26;30"),
    # Invented parks (not real boundaries or names of record).
    _PlatformSpec("拱墅区半山工业园区", "市级", "工业园区", "330105", 120.14, 30.36,
                  110, 110, False, "智能制造、生命健康", ""),
    _PlatformSpec("西湖区转塘小微企业园", "其他", "小微企业园", "330106", 120.1, 30.15,
                  90, 100, False, "文化创意、数字内容", ""),
    _PlatformSpec("萧山区新街工业功能区", "市级", "工业功能区", "330109", None, None,
                  100, 115, False, "装备制造", "",
                  beside="萧山经济技术开发区", gap=800.0),
    _PlatformSpec("桐庐县分水工业功能区", "市级", "工业功能区", "330122", 119.47, 29.93,
                  120, 125, False, "制笔、医疗器械", ""),
    _PlatformSpec("淳安县威坪工业功能区", "其他", "工业功能区", "330127", 118.75, 29.78,
                  30, 105, False, "", ""),
    _PlatformSpec("建德市寿昌小微企业园", "其他", "小微企业园", "330182", 119.22, 29.4,
                  36, 100, False, "", ""),
]
# fmt: on

_LEVEL_ORDER = {"国家级": 0, "省级": 1, "市级": 2, "其他": 3}

_CORRIDORS = [
    ("CXKC", "城西科创大走廊", [(120.08, 30.30), (119.73, 30.26)], 3000.0),
    (
        "CDZZ",
        "城东智造大走廊",
        [(120.33, 30.41), (120.35, 30.30), (120.58, 30.28), (120.28, 30.17), (120.20, 30.19)],
        3500.0,
    ),
]

# GB/T 4754-2017 classes: code, weight (general parks), weight (tech parks), name word,
# product, unit. Heavy = energy- and emission-intensive.
_INDUSTRIES = [
    ("1711", 2.0, 0.0, "纺织", "棉纱", "吨"),
    ("1713", 1.5, 0.0, "印染", "印染布", "米"),
    ("1751", 2.0, 0.0, "纺织", "化纤面料", "米"),
    ("1752", 1.5, 0.0, "印染", "化纤印染布", "米"),
    ("1761", 0.8, 0.0, "针织", "针织面料", "吨"),
    ("1810", 1.5, 0.2, "服饰", "服装", "件"),
    ("2221", 1.2, 0.0, "纸业", "机制纸", "吨"),
    ("2231", 1.0, 0.0, "包装", "纸箱", "平方米"),
    ("2614", 1.0, 0.0, "化工", "有机化学原料", "吨"),
    ("2641", 1.0, 0.0, "涂料", "涂料", "吨"),
    ("2651", 0.8, 0.0, "新材料", "合成树脂", "吨"),
    ("2720", 1.5, 2.0, "药业", "化学药品制剂", "盒"),
    ("2922", 2.0, 0.2, "塑业", "塑料管材", "吨"),
    ("3021", 1.2, 0.0, "建材", "水泥制品", "立方米"),
    ("3041", 0.5, 0.0, "玻璃", "平板玻璃", "重量箱"),
    ("3130", 1.0, 0.0, "钢业", "钢材", "吨"),
    ("3311", 2.0, 0.2, "钢结构", "钢结构件", "吨"),
    ("3360", 1.0, 0.0, "表面处理", "电镀件", "平方米"),
    ("3421", 2.0, 0.5, "机床", "数控机床", "台"),
    ("3443", 2.0, 0.3, "阀门", "阀门", "台"),
    ("3451", 1.5, 0.3, "轴承", "轴承", "套"),
    ("3484", 3.0, 0.5, "机械", "机械零部件", "件"),
    ("3562", 0.8, 2.5, "半导体装备", "半导体专用设备", "台"),
    ("3670", 3.0, 0.8, "汽配", "汽车零部件", "套"),
    ("3812", 2.0, 0.8, "电机", "电动机", "台"),
    ("3841", 1.0, 1.5, "新能源", "锂离子电池", "组"),
    ("3914", 0.8, 3.0, "智能科技", "工业控制系统", "套"),
    ("3922", 1.0, 3.0, "通信", "通信终端", "台"),
    ("3973", 0.5, 3.0, "微电子", "集成电路", "片"),
    ("3976", 0.8, 2.5, "光电", "光电子器件", "只"),
    ("3982", 1.5, 2.5, "电子", "印制电路板", "平方米"),
    ("3983", 1.0, 2.5, "传感科技", "传感器", "只"),
    ("4011", 1.5, 2.5, "自动化", "自动控制装置", "套"),
    ("4412", 0.3, 0.0, "热电", "电力", "千瓦时"),
    ("4430", 0.2, 0.0, "热力", "蒸汽", "吨"),
    ("4610", 0.1, 0.0, "水务", "自来水", "吨"),
]
_IND_CODE = np.array([r[0] for r in _INDUSTRIES])
_IND_W_GENERAL = np.array([r[1] for r in _INDUSTRIES])
_IND_W_TECH = np.array([r[2] for r in _INDUSTRIES])
_IND_WORD = np.array([r[3] for r in _INDUSTRIES], dtype=object)
_IND_PRODUCT = np.array([r[4] for r in _INDUSTRIES], dtype=object)
_IND_UNIT = np.array([r[5] for r in _INDUSTRIES], dtype=object)
_IND_HEAVY = np.array(
    [c[:2] in ("22", "26", "30", "44") or c in ("1713", "1752", "3130") for c in _IND_CODE]
)
_IND_UTILITY = np.array([c[:2] in ("44", "45", "46") for c in _IND_CODE])
_IND_RD = np.array([c[:2] in ("27", "35", "39", "40") or c == "3841" for c in _IND_CODE])
_BACKWARD_CODES = ["2221", "2614", "1713", "1752", "2641", "3021"]

_SYLLABLES = list(
    "华宏鑫恒达瑞锦泰嘉德信诚盛兴旺隆昌福安康新力源通宇天海江东方中博远卓越启明光辉金银丰永和利美"
    "佳亿万正凯腾飞航扬帆峰立合春润科创智联维特奥星晨阳森林"
)
_HOLDER_WORDS = np.array(["实业", "投资", "科技", "制造", "发展", "控股"], dtype=object)

# DLBM codes: code, weight general, weight tech
_LAND_CODES = [
    ("1001", 25, 18),
    ("100101", 20, 22),
    ("100102", 25, 12),
    ("0601", 20, 12),
    ("M0", 3, 16),
    ("100104", 3, 14),
    ("0604", 4, 2),
]
_INNOVATION_CODES = ("M0", "100104")

_BD_NOTES = {
    "安全生产": ["安全生产检查发现重大事故隐患未按期整改", "危险化学品储存不符合规范"],
    "环境保护": ["废水排放超标", "挥发性有机物排放超标", "未按排污许可证要求排放"],
    "节能降耗": ["单位产品能耗超过限额标准", "未完成年度节能目标"],
    "产品质量": ["产品质量监督抽查不合格"],
}

_MARGIN = 80.0  # m between a platform's edge and its outer blocks
_CELL_FACTOR = 1.03  # lots per platform relative to the spec, so that DK >= 5,000 at scale 1
_SCATTER_BLOCKS = 120  # clusters of 3x3 lots outside platforms at scale 1
_SCATTER_PITCH = 2000.0  # m, grid on which clusters are placed (keeps them apart)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _d(s: str) -> np.datetime64:
    return np.datetime64(s, "D")


_NAT = np.datetime64("NaT", "D")


def _fmt_dates(d: np.ndarray, style: str) -> np.ndarray:
    """datetime64[D] -> 'YYYY-MM-DD' / 'YYYYMMDD' / 'YYYY/MM/DD' text, '' for NaT."""
    s = np.datetime_as_string(d, unit="D")
    if style == "compact":
        s = np.char.replace(s, "-", "")
    elif style == "slash":
        s = np.char.replace(s, "-", "/")
    out = s.astype(object)
    out[np.isnat(d)] = ""
    return out


def _rank_within(groups: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each element by ``key`` inside its group, and the size of its group."""
    n = len(groups)
    order = np.lexsort((key, groups))
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1] if n else np.zeros(0, int)
    sizes = np.diff(np.r_[starts, n])
    rank = np.empty(n, np.int64)
    size = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, sizes)
    size[order] = np.repeat(sizes, sizes)
    return rank, size


def _rects(x0, y0, x1, y1, cx, cy, cos, sin) -> tuple[np.ndarray, np.ndarray]:
    """Rectangles given in local frames (origin cx, cy, rotated by cos/sin) -> polygons, corners."""
    lx = np.stack([x0, x1, x1, x0], -1)
    ly = np.stack([y0, y0, y1, y1], -1)
    cx, cy, cos, sin = (np.asarray(a, float)[..., None] for a in (cx, cy, cos, sin))
    wx = cx + lx * cos - ly * sin
    wy = cy + lx * sin + ly * cos
    corners = np.stack([wx, wy], -1)
    ring = np.concatenate([corners, corners[:, :1]], 1)
    return shapely.polygons(ring), corners


def _to_world(lx, ly, cx, cy, cos, sin) -> tuple[np.ndarray, np.ndarray]:
    return cx + lx * cos - ly * sin, cy + lx * sin + ly * cos


def _locate(polys: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index of the polygon holding each point (nearest one where none does)."""
    tree = shapely.STRtree(polys)
    pts = shapely.points(x, y)
    pi, ti = tree.query(pts, predicate="intersects")
    out = np.full(len(x), -1, np.int64)
    order = np.lexsort((ti, pi))
    pi, ti = pi[order], ti[order]
    first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, bool)
    out[pi[first]] = ti[first]
    miss = np.flatnonzero(out < 0)
    if len(miss):
        qi, qt = tree.query_nearest(pts[miss])
        o = np.lexsort((qt, qi))
        qi, qt = qi[o], qt[o]
        f = np.r_[True, qi[1:] != qi[:-1]]
        out[miss[qi[f]]] = qt[f]
    return out


def _pick(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """k distinct elements of pool (fewer if the pool is smaller), sorted."""
    k = min(int(k), len(pool))
    if k <= 0:
        return pool[:0]
    return np.sort(rng.choice(pool, k, replace=False))


def _count(share: float, n: int, scale: int, minimum: int = 3) -> int:
    return max(minimum * (1 if scale == 1 else scale), int(round(share * n)))


def _org_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """9-character organisation codes (GB 11714: 8 characters and a check character)."""
    alpha = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", np.uint8)
    b = (ord("0") + rng.integers(0, 10, (n, 8))).astype(np.uint8)
    b[:, 0] = ord("0") + rng.integers(1, 8, n)
    new = rng.random(n) < 0.4  # codes issued after 2015 start with MA
    b[new, 0], b[new, 1], b[new, 2] = ord("M"), ord("A"), ord("2")
    b[new, 3:] = alpha[rng.integers(0, len(alpha), (int(new.sum()), 5))]
    val = np.where(b >= ord("A"), b.astype(int) - ord("A") + 10, b.astype(int) - ord("0"))
    c = 11 - (val * np.array([3, 7, 9, 10, 5, 8, 4, 2])).sum(1) % 11
    chk = np.where(c == 10, ord("X"), np.where(c == 11, ord("0"), ord("0") + c)).astype(np.uint8)
    return np.concatenate([b, chk[:, None]], 1)


def _usccs(rng: np.random.Generator, districts: np.ndarray) -> np.ndarray:
    """Unique 18-character USCCs ('91' + district + organisation code + check character)."""
    n = len(districts)
    out = np.empty(n, dtype=object)
    todo = np.arange(n)
    seen: set[str] = set()
    while len(todo):
        org = _org_codes(rng, len(todo))
        head = np.frombuffer(
            np.char.encode(np.char.add("91", districts[todo].astype("U6")), "ascii")
            .astype("S8")
            .tobytes(),
            np.uint8,
        ).reshape(-1, 8)
        raw = np.ascontiguousarray(np.concatenate([head, org], 1)).view("S17").ravel()
        first17 = raw.astype("U17")
        retry = []
        for i, f in zip(todo, first17, strict=True):
            code = f + check_character(f)
            if code in seen:
                retry.append(i)
            else:
                seen.add(code)
                out[i] = code
        todo = np.array(retry, dtype=np.int64)
    return out


def _names(
    rng: np.random.Generator, words: np.ndarray, district_names: np.ndarray, taken: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Unique company names like 杭州华鑫科技有限公司; returns (names, short core names)."""
    n = len(words)
    syl = np.array(_SYLLABLES, dtype=object)
    names = np.empty(n, dtype=object)
    cores = np.empty(n, dtype=object)
    todo = np.arange(n)
    length = 2
    while len(todo):
        m = len(todo)
        core = syl[rng.integers(0, len(syl), m)]
        for _ in range(length - 1):
            core = core + syl[rng.integers(0, len(syl), m)]
        kind = rng.random(m)
        short = np.array([d[:-1] for d in district_names[todo]], dtype=object)
        prefix = np.where(kind < 0.7, "杭州", np.where(kind < 0.85, "浙江", "杭州" + short))
        suffix = np.where(rng.random(m) < 0.8, "有限公司", "股份有限公司")
        cand = prefix + core + words[todo] + suffix
        retry = []
        for i, c, k in zip(todo, cand, core, strict=True):
            if c in taken:
                retry.append(i)
            else:
                taken.add(c)
                names[i], cores[i] = c, k
        todo = np.array(retry, dtype=np.int64)
        length = 3
    return names, cores


# --------------------------------------------------------------------------------------------
# Geography: platforms, districts, corridors
# --------------------------------------------------------------------------------------------


@dataclass
class _Geo:
    d_code: np.ndarray
    d_name: np.ndarray
    d_main: np.ndarray
    d_xy: np.ndarray
    d_poly: np.ndarray
    envelope: shapely.Geometry
    plat: pd.DataFrame  # one row per platform spec, with layout and polygon
    plat_blocks: list[dict]  # per platform: kept block origins (local)
    corridors: list[tuple[str, str, shapely.Geometry]]


def _layout_platforms(rng: np.random.Generator, scale: int) -> tuple[pd.DataFrame, list[dict]]:
    rows: list[dict] = []
    blocks: list[dict] = []
    by_name: dict[str, int] = {}
    for i, sp in enumerate(_PLATFORMS):
        nc, nr = int(rng.integers(3, 6)), int(rng.integers(3, 5))
        road = float(rng.uniform(20, 40))
        aspect = float(rng.uniform(1.0, 1.8))
        theta = float(np.deg2rad(rng.uniform(-25, 25)))
        n_target = max(4, round(sp.cells * scale * _CELL_FACTOR))
        n_blocks = math.ceil(n_target / (nc * nr))
        bw, bh = nc * sp.side, nr * sp.side
        ny = max(1, math.ceil(math.sqrt(n_blocks * bw / (bh * aspect))))
        nx = math.ceil(n_blocks / ny)
        width = nx * bw + (nx - 1) * road + 2 * _MARGIN
        height = ny * bh + (ny - 1) * road + 2 * _MARGIN
        if sp.beside is not None:
            host = rows[by_name[sp.beside]]
            theta = host["theta"]
            dist = host["W"] / 2 + sp.gap + width / 2
            cx, cy = host["cx"] + dist * math.cos(theta), host["cy"] + dist * math.sin(theta)
        else:
            cx, cy = _TO_GK.transform(sp.lon, sp.lat)
        keep = np.sort(rng.choice(nx * ny, n_blocks, replace=False))
        gx, gy = keep % nx, keep // nx
        blocks.append(
            {
                "x0": -width / 2 + _MARGIN + gx * (bw + road),
                "y0": -height / 2 + _MARGIN + gy * (bh + road),
                "bw": bw,
                "bh": bh,
                "nc": nc,
                "nr": nr,
            }
        )
        by_name[sp.name] = i
        rows.append(
            {
                "name": sp.name,
                "level": sp.level,
                "ptype": sp.ptype,
                "district": sp.district,
                "tech": sp.tech,
                "tscy": sp.tscy,
                "fmqd": sp.fmqd,
                "cx": float(cx),
                "cy": float(cy),
                "theta": theta,
                "W": width,
                "H": height,
            }
        )
    plat = pd.DataFrame(rows)
    c, s = np.cos(plat.theta.to_numpy()), np.sin(plat.theta.to_numpy())
    polys, _ = _rects(
        -plat.W.to_numpy() / 2,
        -plat.H.to_numpy() / 2,
        plat.W.to_numpy() / 2,
        plat.H.to_numpy() / 2,
        plat.cx.to_numpy(),
        plat.cy.to_numpy(),
        c,
        s,
    )
    # Platforms never overlap: lower-ranked ones give way (only happens at large scales). One
    # that the others would leave under a tenth of is moved out instead, away from their
    # centre in steps of its half-diagonal, blocks and all (at scale 200 three vanished).
    order = sorted(range(len(plat)), key=lambda i: (_LEVEL_ORDER[plat.level[i]], i))
    taken: list[shapely.Geometry] = []
    final = polys.copy()
    for i in order:
        geom = polys[i]
        if taken:
            other = shapely.union_all(taken).buffer(150.0, quad_segs=2)
            if geom.intersects(other):
                rest = geom.difference(other)
                if rest.is_empty or rest.area < 0.1 * geom.area:
                    geom = _move_out(plat, i, geom, other)
                else:
                    parts = shapely.get_parts(rest)
                    geom = parts[np.argmax(shapely.area(parts))]
        final[i] = geom
        taken.append(geom)
    plat["poly"] = final
    plat["cos"], plat["sin"] = c, s
    return plat, blocks


def _move_out(
    plat: pd.DataFrame, i: int, geom: shapely.Geometry, other: shapely.Geometry
) -> shapely.Geometry:
    """Platform ``i`` (polygon ``geom``) moved away from the centre of ``other`` until clear of
    it; its centre (``cx``, ``cy``) updated in ``plat``. Returns the moved polygon."""
    ox, oy = shapely.get_coordinates(other.centroid)[0]
    dx, dy = plat.cx[i] - ox, plat.cy[i] - oy
    d = math.hypot(dx, dy)
    ux, uy = (dx / d, dy / d) if d > 0 else (1.0, 0.0)
    step = math.hypot(plat.W[i], plat.H[i]) / 2
    k = 0
    while geom.intersects(other):
        k += 1
        geom = shapely.transform(geom, lambda xy, k=k: xy + [ux * step, uy * step])
    plat.loc[i, "cx"] = plat.cx[i] + k * ux * step
    plat.loc[i, "cy"] = plat.cy[i] + k * uy * step
    return geom


def _build_geography(rng: np.random.Generator, scale: int) -> _Geo:
    d_code = np.array([d[0] for d in _DISTRICTS])
    d_name = np.array([d[1] for d in _DISTRICTS], dtype=object)
    d_main = np.array([d[4] for d in _DISTRICTS])
    dx, dy = _TO_GK.transform([d[2] for d in _DISTRICTS], [d[3] for d in _DISTRICTS])
    d_xy = np.column_stack([dx, dy])
    plat, plat_blocks = _layout_platforms(rng, scale)

    # Voronoi seeds: district centres and platform centres, each labelled with its district.
    code_idx = {c: i for i, c in enumerate(d_code)}
    seeds = [(x, y, i) for i, (x, y) in enumerate(d_xy)]
    for p in plat.itertuples():
        if all(math.hypot(p.cx - x, p.cy - y) > 1.0 for x, y, _ in seeds):
            seeds.append((p.cx, p.cy, code_idx[p.district]))
    sxy = np.array([(x, y) for x, y, _ in seeds])
    sdist = np.array([i for _, _, i in seeds])
    hull = shapely.convex_hull(shapely.union_all([shapely.multipoints(sxy), *plat.poly.to_numpy()]))
    envelope = hull.buffer(15000.0, quad_segs=4)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(sxy), extend_to=envelope, ordered=True)
    )
    d_poly = np.empty(len(d_code), dtype=object)
    for i in range(len(d_code)):
        d_poly[i] = shapely.union_all(cells[sdist == i]).intersection(envelope)

    corridors = []
    for code, name, pts, radius in _CORRIDORS:
        x, y = _TO_GK.transform([p[0] for p in pts], [p[1] for p in pts])
        corridors.append((code, name, shapely.LineString(np.column_stack([x, y])).buffer(radius)))
    return _Geo(d_code, d_name, d_main, d_xy, d_poly, envelope, plat, plat_blocks, corridors)


# --------------------------------------------------------------------------------------------
# Blocks and lots
# --------------------------------------------------------------------------------------------


@dataclass
class _Cells:
    # blocks
    b_plat: np.ndarray
    b_cx: np.ndarray
    b_cy: np.ndarray
    b_cos: np.ndarray
    b_sin: np.ndarray
    b_x0: np.ndarray
    b_y0: np.ndarray
    b_x1: np.ndarray
    b_y1: np.ndarray
    # lots
    blk: np.ndarray
    col: np.ndarray
    row: np.ndarray
    lx0: np.ndarray
    lx1: np.ndarray
    ly0: np.ndarray
    ly1: np.ndarray
    poly: np.ndarray
    district: np.ndarray  # index into _Geo.d_code


def _split_blocks(rng, x0, y0, bw, bh, nc, nr):
    """Split blocks (arrays of origin and size) into nc x nr lots of varying width and height."""
    nb = len(x0)
    u = rng.uniform(0.7, 1.3, (nb, nc))
    ex = np.concatenate([np.zeros((nb, 1)), np.cumsum(u / u.sum(1, keepdims=True), 1)], 1)
    ex *= bw[:, None]
    v = rng.uniform(0.7, 1.3, (nb, nr))
    ey = np.concatenate([np.zeros((nb, 1)), np.cumsum(v / v.sum(1, keepdims=True), 1)], 1)
    ey *= bh[:, None]
    shape = (nb, nr, nc)
    lx0 = np.broadcast_to((x0[:, None] + ex[:, :-1])[:, None, :], shape).ravel()
    lx1 = np.broadcast_to((x0[:, None] + ex[:, 1:])[:, None, :], shape).ravel()
    ly0 = np.broadcast_to((y0[:, None] + ey[:, :-1])[:, :, None], shape).ravel()
    ly1 = np.broadcast_to((y0[:, None] + ey[:, 1:])[:, :, None], shape).ravel()
    blk = np.repeat(np.arange(nb), nr * nc)
    col = np.tile(np.arange(nc), nb * nr)
    row = np.tile(np.repeat(np.arange(nr), nc), nb)
    return blk, col, row, lx0, lx1, ly0, ly1, x0 + ex[:, -1], y0 + ey[:, -1]


def _build_cells(rng: np.random.Generator, geo: _Geo, scale: int) -> _Cells:
    parts: list[dict] = []
    nblk = 0
    for i, p in enumerate(geo.plat.itertuples()):
        b = geo.plat_blocks[i]
        nb = len(b["x0"])
        bw, bh = np.full(nb, b["bw"]), np.full(nb, b["bh"])
        blk, col, row, lx0, lx1, ly0, ly1, bx1, by1 = _split_blocks(
            rng, b["x0"], b["y0"], bw, bh, b["nc"], b["nr"]
        )
        # keep whole blocks that lie inside the (possibly trimmed) platform
        bpoly, _ = _rects(
            b["x0"],
            b["y0"],
            bx1,
            by1,
            np.full(nb, p.cx),
            np.full(nb, p.cy),
            np.full(nb, p.cos),
            np.full(nb, p.sin),
        )
        shapely.prepare(p.poly)
        inside = shapely.within(bpoly, p.poly)
        parts.append(
            {
                "b_plat": np.full(nb, i),
                "b_cx": np.full(nb, p.cx),
                "b_cy": np.full(nb, p.cy),
                "b_cos": np.full(nb, p.cos),
                "b_sin": np.full(nb, p.sin),
                "b_x0": b["x0"],
                "b_y0": b["y0"],
                "b_x1": bx1,
                "b_y1": by1,
                "b_keep": inside,
                "blk": blk + nblk,
                "col": col,
                "row": row,
                "lx0": lx0,
                "lx1": lx1,
                "ly0": ly0,
                "ly1": ly1,
            }
        )
        nblk += nb

    # Scattered clusters: 3 x 3 lots, on a coarse grid away from platforms and the edge.
    minx, miny, maxx, maxy = geo.envelope.bounds
    gx, gy = np.meshgrid(
        np.arange(minx + _SCATTER_PITCH / 2, maxx, _SCATTER_PITCH),
        np.arange(miny + _SCATTER_PITCH / 2, maxy, _SCATTER_PITCH),
    )
    gx, gy = gx.ravel(), gy.ravel()
    pts = shapely.points(gx, gy)
    ok = shapely.contains_xy(geo.envelope, gx, gy)
    ok &= shapely.distance(pts, geo.envelope.boundary) > 1500.0
    near, _ = shapely.STRtree(geo.plat.poly.to_numpy()).query(
        pts, predicate="dwithin", distance=1800.0
    )
    ok[near] = False
    cand = np.flatnonzero(ok)
    cdist = _locate(geo.d_poly, gx[cand], gy[cand])
    w = np.array([d[5] for d in _DISTRICTS])[cdist]
    w = w * np.exp(-np.hypot(gx[cand] - geo.d_xy[cdist, 0], gy[cand] - geo.d_xy[cdist, 1]) / 15000)
    n_sb = min(len(cand), _SCATTER_BLOCKS * scale)
    sel = np.sort(rng.choice(cand, n_sb, replace=False, p=w / w.sum()))
    side = rng.uniform(100, 165, n_sb)
    bw = 3 * side
    theta = np.deg2rad(rng.uniform(-40, 40, n_sb))
    cx = gx[sel] + rng.uniform(-300, 300, n_sb)
    cy = gy[sel] + rng.uniform(-300, 300, n_sb)
    blk, col, row, lx0, lx1, ly0, ly1, bx1, by1 = _split_blocks(rng, -bw / 2, -bw / 2, bw, bw, 3, 3)
    parts.append(
        {
            "b_plat": np.full(n_sb, -1),
            "b_cx": cx,
            "b_cy": cy,
            "b_cos": np.cos(theta),
            "b_sin": np.sin(theta),
            "b_x0": -bw / 2,
            "b_y0": -bw / 2,
            "b_x1": bx1,
            "b_y1": by1,
            "b_keep": np.ones(n_sb, bool),
            "blk": blk + nblk,
            "col": col,
            "row": row,
            "lx0": lx0,
            "lx1": lx1,
            "ly0": ly0,
            "ly1": ly1,
        }
    )

    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    keep_b = cat["b_keep"]
    new_id = np.cumsum(keep_b) - 1
    keep_c = keep_b[cat["blk"]]
    bk = {
        k: cat[k][keep_b]
        for k in ("b_plat", "b_cx", "b_cy", "b_cos", "b_sin", "b_x0", "b_y0", "b_x1", "b_y1")
    }
    ck = {k: cat[k][keep_c] for k in ("col", "row", "lx0", "lx1", "ly0", "ly1")}
    blk = new_id[cat["blk"][keep_c]]
    f = (bk["b_cx"][blk], bk["b_cy"][blk], bk["b_cos"][blk], bk["b_sin"][blk])
    poly, _ = _rects(ck["lx0"], ck["ly0"], ck["lx1"], ck["ly1"], *f)
    mx, my = _to_world((ck["lx0"] + ck["lx1"]) / 2, (ck["ly0"] + ck["ly1"]) / 2, *f)
    district = _locate(geo.d_poly, mx, my)
    return _Cells(**bk, blk=blk, **ck, poly=poly, district=district)


# --------------------------------------------------------------------------------------------
# Approvals, supplies, parcels
# --------------------------------------------------------------------------------------------

_GD_ONLY_CATS = ["not_due", "overdue", "idle", "idle_reclaimable", "building"]
_GD_ONLY_SHARE = [0.30, 0.25, 0.15, 0.08, 0.22]
_GD_DK_CATS = ["idle", "idle_reclaimable", "partial_idle", "records_disagree", "stopped_under_1y"]
_GD_DK_SHARE = [0.006, 0.007, 0.005, 0.004, 0.002]


def _days(rng, lo, hi, n=None):
    """Random whole days in [lo, hi] (inclusive) as timedelta64[D]."""
    lo = np.asarray(lo)
    hi = np.asarray(hi)
    size = n if n is not None else np.broadcast(lo, hi).shape
    return rng.integers(lo, hi + 1, size=size).astype("timedelta64[D]")


def _between(rng, lo: np.datetime64 | np.ndarray, hi: np.datetime64 | np.ndarray, n: int):
    lo = np.broadcast_to(np.asarray(lo, "datetime64[D]"), (n,))
    hi = np.broadcast_to(np.asarray(hi, "datetime64[D]"), (n,))
    span = (hi - lo).astype(np.int64)
    return lo + rng.integers(0, span + 1).astype("timedelta64[D]")


def classify_supplies(
    ref: np.datetime64,
    agreed_start: np.ndarray,
    actual_start: np.ndarray,
    stopped: np.ndarray,
    developed: np.ndarray,
    area: np.ndarray,
    invested: np.ndarray,
    agreed_invest: np.ndarray,
    footprint_ratio: np.ndarray,
) -> dict[str, np.ndarray]:
    """DOMAIN_RULES §3 (供而未用 / 闲置) as boolean masks, for building planted.json.

    A year is taken as 365 days; the generator keeps its dates at least ~20 days from any bound.
    ``footprint_ratio`` is the linked parcel's JZJDMJ / area (NaN where there is no parcel).
    """
    ref = np.datetime64(ref, "D")
    agreed_start, actual_start, stopped = (
        np.asarray(a).astype("datetime64[D]") for a in (agreed_start, actual_start, stopped)
    )
    not_started = np.isnat(actual_start)
    late = (ref - agreed_start).astype(np.int64)
    started = ~not_started
    stopped_days = np.where(np.isnat(stopped), -1, (ref - stopped).astype(np.int64))
    small = (developed < area / 3) | (invested < 0.25 * agreed_invest)
    with np.errstate(invalid="ignore"):
        disagree = started & (footprint_ratio < 0.05)
    return {
        "not_due": not_started & (agreed_start > ref),
        "overdue": not_started & (late >= 0) & (late < 365),
        "idle": not_started & (late >= 365) & (late < 730),
        "idle_reclaimable": not_started & (late >= 730),
        "partial_idle": started & (stopped_days >= 365) & small,
        "stopped_under_1y": started & (stopped_days >= 0) & (stopped_days < 365),
        "records_disagree": disagree,
    }


@dataclass
class _Land:
    # approvals (one per approval block)
    pz_blk: np.ndarray
    pz_poly: np.ndarray
    pz_kind: np.ndarray  # 0 fully supplied, 1 partly, 2 not at all
    pz_date: np.ndarray
    pz_no: np.ndarray
    pz_batch: np.ndarray
    pz_area: np.ndarray
    # supplies
    gd: pd.DataFrame
    gd_poly: np.ndarray
    # parcels
    dk: pd.DataFrame
    dk_poly: np.ndarray
    dk_corners: np.ndarray


def _build_land(
    rng: np.random.Generator, geo: _Geo, c: _Cells, ref: np.datetime64, scale: int
) -> _Land:
    nb, n = len(c.b_cx), len(c.blk)
    b_is_plat = c.b_plat >= 0
    b_appr = rng.random(nb) < np.where(b_is_plat, 0.5, 0.2)
    b_type = rng.choice(3, nb, p=[0.5, 0.35, 0.15])
    b_frac = rng.uniform(0.25, 0.7, nb)
    rank, size = _rank_within(c.blk, rng.random(n))
    k_un = np.clip(np.round(b_frac[c.blk] * size), 1, size - 1)
    appr = b_appr[c.blk]
    typ = b_type[c.blk]
    unsup = appr & ((typ == 2) | ((typ == 1) & (rank < k_un)))
    drop = ~appr & ~b_is_plat[c.blk] & (rng.random(n) < 0.2)
    gd_only = appr & ~unsup & (rng.random(n) < 0.1)
    has_dk = ~unsup & ~drop & ~gd_only
    has_gd = (appr & ~unsup) | (has_dk & ~appr & (rng.random(n) < 0.88))
    tech = np.where(c.b_plat >= 0, geo.plat.tech.to_numpy()[np.maximum(c.b_plat, 0)], False)
    tech = tech[c.blk]

    # ---- land-use codes
    codes = np.array([x[0] for x in _LAND_CODES], dtype=object)
    pg = np.array([x[1] for x in _LAND_CODES], float)
    pt = np.array([x[2] for x in _LAND_CODES], float)
    lu = np.where(
        tech, rng.choice(len(codes), n, p=pt / pt.sum()), rng.choice(len(codes), n, p=pg / pg.sum())
    )
    dlbm = codes[lu]
    innov = np.isin(dlbm, _INNOVATION_CODES)

    # ---- supply records
    gi = np.flatnonzero(has_gd)  # cell index of each supply record
    ng = len(gi)
    g_dk = has_dk[gi]
    cat = np.full(ng, "normal", dtype=object)
    only = np.flatnonzero(~g_dk)
    perm = rng.permutation(only)
    pos = 0
    for name, share in zip(_GD_ONLY_CATS, _GD_ONLY_SHARE, strict=True):
        k = max(3, round(share * len(only)))
        cat[perm[pos : pos + k]] = name
        pos += k
    cat[perm[pos:]] = "building"
    withdk = np.flatnonzero(g_dk)
    perm = rng.permutation(withdk)
    pos = 0
    for name, share in zip(_GD_DK_CATS, _GD_DK_SHARE, strict=True):
        k = _count(share, len(withdk), scale)
        cat[perm[pos : pos + k]] = name
        pos += k

    gdrq = np.full(ng, _NAT)
    htkg = np.full(ng, _NAT)
    sjkg = np.full(ng, _NAT)
    sjjg = np.full(ng, _NAT)
    tgrq = np.full(ng, _NAT)

    def _set(mask, start, gap_lo=183, gap_hi=365):
        """Agreed start given; supply date 6-12 months before it."""
        htkg[mask] = start
        gdrq[mask] = start - _days(rng, gap_lo, gap_hi, int(mask.sum()))

    m = cat == "normal"
    k = int(m.sum())
    lo = np.where(appr[gi[m]], _d("2010-01-01"), _d("2008-01-15"))
    gdrq[m] = _between(rng, lo, _d("2022-06-30"), k)
    htkg[m] = gdrq[m] + _days(rng, 183, 365, k)
    sjkg[m] = htkg[m] + _days(rng, -60, 200, k)
    done = sjkg[m] + _days(rng, 365, 900, k)
    sjjg[m] = np.where(done <= ref - 15, done, _NAT)

    m = cat == "building"
    k = int(m.sum())
    gdrq[m] = _between(rng, ref - 1095, ref - 200, k)
    htkg[m] = gdrq[m] + _days(rng, 183, 365, k)
    sjkg[m] = np.minimum(htkg[m] + _days(rng, -90, 60, k), ref - 10)

    m = cat == "not_due"
    k = int(m.sum())
    start = ref + _days(rng, 20, 200, k)
    htkg[m] = start
    gap = np.maximum(_days(rng, 183, 365, k), (start - ref) + 15)
    gdrq[m] = start - gap
    for name, lo_d, hi_d in (("overdue", 20, 340), ("idle", 385, 710)):
        m = cat == name
        _set(m, ref - _days(rng, lo_d, hi_d, int(m.sum())))
    m = cat == "idle_reclaimable"
    _set(m, _between(rng, _d("2016-01-01"), ref - 750, int(m.sum())))

    m = (cat == "partial_idle") | (cat == "stopped_under_1y")
    k = int(m.sum())
    stop = np.where(
        cat[m] == "partial_idle", ref - _days(rng, 400, 1800, k), ref - _days(rng, 30, 330, k)
    )
    tgrq[m] = stop
    sjkg[m] = stop - _days(rng, 90, 600, k)
    _set(m, sjkg[m] + _days(rng, -60, 120, k))

    m = cat == "records_disagree"
    k = int(m.sum())
    gdrq[m] = _between(rng, _d("2015-01-01"), _d("2022-12-31"), k)
    htkg[m] = gdrq[m] + _days(rng, 183, 365, k)
    sjkg[m] = htkg[m] + _days(rng, -30, 120, k)
    done = sjkg[m] + _days(rng, 365, 800, k)
    sjjg[m] = np.where((rng.random(k) < 0.5) & (done <= ref - 15), done, _NAT)
    htjg = htkg + _days(rng, 540, 1095, ng)

    g_area = shapely.area(c.poly[gi])
    g_mu = g_area * MU_PER_M2
    g_innov = innov[gi]
    rjlxx = np.where(
        g_innov,
        rng.choice([2.0, 2.2], ng),
        rng.choice([1.0, 1.2, 1.5, 1.6, 2.0], ng, p=[0.3, 0.3, 0.2, 0.1, 0.1]),
    )
    rjlsx = np.maximum(rjlxx + 1.0, rng.choice([2.5, 3.0, 3.5, 4.0], ng))
    no_ratio = (gdrq < _d("2012-01-01")) & (rng.random(ng) < 0.3)
    rjlxx = np.where(no_ratio, np.nan, rjlxx)
    rjlsx = np.where(no_ratio, np.nan, rjlsx)
    intensity = rng.uniform(250, 600, ng) * np.where(g_innov | tech[gi], 1.3, 1.0)
    ydtz = np.round(g_mu * intensity, 2)
    sjtz_f = np.zeros(ng)
    dev_f = np.zeros(ng)
    completed = ~np.isnat(sjjg)
    started = ~np.isnat(sjkg)
    sjtz_f[started] = rng.uniform(0.5, 0.9, int(started.sum()))
    dev_f[started] = rng.uniform(0.5, 0.95, int(started.sum()))
    sjtz_f[completed] = rng.uniform(0.9, 1.25, int(completed.sum()))
    dev_f[completed] = 1.0
    m = cat == "building"
    sjtz_f[m] = rng.uniform(0.3, 0.8, int(m.sum()))
    dev_f[m] = rng.uniform(0.4, 0.9, int(m.sum()))
    m = np.flatnonzero((cat == "partial_idle") | (cat == "stopped_under_1y"))
    half = rng.random(len(m)) < 0.5
    dev_f[m] = np.where(half, rng.uniform(0.05, 0.28, len(m)), rng.uniform(0.4, 0.6, len(m)))
    sjtz_f[m] = np.where(half, rng.uniform(0.3, 0.5, len(m)), rng.uniform(0.05, 0.22, len(m)))
    sjtz = np.round(ydtz * sjtz_f, 2)
    ykfmj = np.round(g_area * dev_f, 1)
    gdfs = rng.choice(
        np.array(["出让", "划拨", "租赁", "作价出资"], dtype=object), ng, p=[0.9, 0.03, 0.04, 0.03]
    )

    # ---- approvals: dates from their supplies
    pz_blk = np.flatnonzero(b_appr)
    first_supply = np.full(nb, np.iinfo(np.int64).max)
    np.minimum.at(first_supply, c.blk[gi], gdrq.astype(np.int64))
    has_supply = first_supply[pz_blk] < np.iinfo(np.int64).max
    npz = len(pz_blk)
    pz_date = np.empty(npz, "datetime64[D]")
    first = first_supply[pz_blk][has_supply].astype("datetime64[D]")
    room = np.clip((first - _d("2008-01-02")).astype(np.int64), 0, 900)
    pz_date[has_supply] = first - _days(rng, np.minimum(30, room), room)
    pz_date[~has_supply] = _between(rng, _d("2009-01-01"), ref - 30, int((~has_supply).sum()))
    pz_kind = np.where(~has_supply, 2, np.where(b_type[pz_blk] == 0, 0, 1))
    # partly/none blocks of type 'partly' always keep >= 1 supplied lot; 'full' all of them
    pz_poly, _ = _rects(
        c.b_x0[pz_blk] + 0.5,
        c.b_y0[pz_blk] + 0.5,
        c.b_x1[pz_blk] - 0.5,
        c.b_y1[pz_blk] - 0.5,
        c.b_cx[pz_blk],
        c.b_cy[pz_blk],
        c.b_cos[pz_blk],
        c.b_sin[pz_blk],
    )
    pz_area = np.round(shapely.area(pz_poly) * rng.uniform(0.997, 1.003, npz), 2)
    pz_dist = c.district[_first_cell_of_block(c.blk, nb)[pz_blk]]
    pz_no, pz_batch = _approval_numbers(rng, pz_date, pz_dist, geo)

    # ---- parcels
    di = np.flatnonzero(has_dk)
    nd = len(di)
    cell_gd = np.full(n, -1)
    cell_gd[gi] = np.arange(ng)
    d_gd = cell_gd[di]
    d_cat = np.where(d_gd >= 0, cat[np.maximum(d_gd, 0)], "none").astype(object)
    d_dlbm = dlbm[di].copy()
    old = np.flatnonzero(d_gd < 0)
    sjyt = np.where(
        np.isin(d_dlbm, _INNOVATION_CODES) & (rng.random(nd) < 0.8), "创新型产业", "工业"
    ).astype(object)
    idle_like = np.isin(
        d_cat, ["idle", "idle_reclaimable", "partial_idle", "records_disagree", "stopped_under_1y"]
    )
    sjyt[idle_like] = "闲置"
    perm = rng.permutation(old)
    k7, ki, kd = (
        _count(0.008, len(old), scale),
        _count(0.012, len(old), scale),
        _count(0.02, len(old), scale),
    )
    res_7, res_idle, res_div = perm[:k7], perm[k7 : k7 + ki], perm[k7 + ki : k7 + ki + kd]
    d_dlbm[res_7] = "0702"
    sjyt[res_7] = "挪作他用"
    sjyt[res_idle] = "闲置"
    sjyt[res_div] = "挪作他用"
    normal_gd = np.flatnonzero(d_cat == "normal")
    sjyt[_pick(rng, normal_gd, _count(0.01, len(normal_gd), scale))] = "挪作他用"
    g_tdyt = dlbm[gi].copy()
    g_tdyt[d_gd[d_gd >= 0]] = d_dlbm[d_gd >= 0]

    inset = np.where(rng.random(nd) < 0.3, rng.uniform(1, 6, nd), 0.0)
    f = (c.b_cx[c.blk[di]], c.b_cy[c.blk[di]], c.b_cos[c.blk[di]], c.b_sin[c.blk[di]])
    dk_poly, dk_corners = _rects(
        c.lx0[di] + inset, c.ly0[di] + inset, c.lx1[di] - inset, c.ly1[di] - inset, *f
    )
    d_area = shapely.area(dk_poly)
    thr = np.where(d_gd >= 0, rjlxx[np.maximum(d_gd, 0)], np.nan)
    thr = np.where(np.isnan(thr), 1.0, np.maximum(thr, 0.0))
    ratio = thr + 0.1 + (3.0 - thr - 0.1) * rng.beta(1.6, 3.0, nd)
    fp = rng.uniform(0.25, 0.6, nd)
    in_use = np.isin(sjyt, ["工业", "创新型产业"])
    low = _pick(rng, np.flatnonzero(in_use), _count(0.015, int(in_use.sum()), scale))
    ratio[low] = rng.uniform(0.3, 0.8, len(low))
    fp[low] = np.maximum(ratio[low] * rng.uniform(0.5, 1.0, len(low)), 0.15)
    for name, lo_f, hi_f in (
        ("idle", 0, 0),
        ("idle_reclaimable", 0, 0),
        ("partial_idle", 0.06, 0.2),
        ("records_disagree", 0.0, 0.035),
        ("stopped_under_1y", 0.08, 0.2),
    ):
        m = d_cat == name
        fp[m] = rng.uniform(lo_f, hi_f, int(m.sum())) if hi_f else 0.0
        ratio[m] = fp[m]
    jzmj = np.round(d_area * ratio, 1)
    jzjdmj = np.round(d_area * fp, 1)

    # supply link: most parcels name their record; some leave DZJGH blank (overlap link)
    normal_use = np.flatnonzero((d_cat == "normal") & in_use)
    overlap = _pick(rng, normal_use, _count(0.02, len(normal_use), scale))
    d_dist = c.district[di]
    dkbh = _serials(d_dist, geo, "DK{d}-{s:05d}", np.arange(nd))
    dzjgh = _supply_numbers(rng, gdrq, c.district[gi], geo)
    d_dzjgh = np.where(d_gd >= 0, dzjgh[np.maximum(d_gd, 0)], "").astype(object)
    d_dzjgh[overlap] = ""

    gd = pd.DataFrame(
        {
            "DZJGH": dzjgh,
            "GDFS": gdfs,
            "TDYT": g_tdyt,
            "GDRQ": gdrq,
            "HTKGSJ": htkg,
            "HTJGSJ": htjg,
            "SJKGSJ": sjkg,
            "SJJGSJ": sjjg,
            "TGRQ": tgrq,
            "RJLXX": rjlxx,
            "RJLSX": rjlsx,
            "YDTZ": ydtz,
            "SJTZ": sjtz,
            "YKFMJ": ykfmj,
            "cat": cat,
            "cell": gi,
            "area": g_area,
            "dk": np.full(ng, -1),
            "district": c.district[gi],
            "plat": c.b_plat[c.blk[gi]],
        }
    )
    gd.loc[d_gd[d_gd >= 0], "dk"] = np.flatnonzero(d_gd >= 0)
    dk = pd.DataFrame(
        {
            "DKBH": dkbh,
            "DLBM": d_dlbm,
            "SJYT": sjyt,
            "JZMJ": jzmj,
            "JZJDMJ": jzjdmj,
            "DZJGH": d_dzjgh,
            "XZQDM": geo.d_code[d_dist],
            "area": d_area,
            "gd": d_gd,
            "cat": d_cat,
            "cell": di,
            "district": d_dist,
            "plat": c.b_plat[c.blk[di]],
            "blk": c.blk[di],
            "row": c.row[di],
            "col": c.col[di],
            "inset": inset,
            "thr": thr,
            "low_ratio": np.isin(np.arange(nd), low),
            "overlap": np.isin(np.arange(nd), overlap),
        }
    )
    return _Land(
        pz_blk,
        pz_poly,
        pz_kind,
        pz_date,
        pz_no,
        pz_batch,
        pz_area,
        gd,
        c.poly[gi],
        dk,
        dk_poly,
        dk_corners,
    )


def _first_cell_of_block(blk: np.ndarray, nb: int) -> np.ndarray:
    first = np.full(nb, -1)
    idx = np.arange(len(blk))[::-1]
    first[blk[idx]] = idx
    return first


def _serials(district: np.ndarray, geo: _Geo, fmt: str, order_key: np.ndarray) -> np.ndarray:
    """Numbers 1, 2, ... per district in the order of order_key."""
    rank, _ = _rank_within(district, order_key)
    width_ok = [fmt.format(d=geo.d_code[d], s=r + 1) for d, r in zip(district, rank, strict=True)]
    return np.array(width_ok, dtype=object)


def _supply_numbers(rng, gdrq: np.ndarray, district: np.ndarray, geo: _Geo) -> np.ndarray:
    """电子监管号 like 3301142019B00123: district, year of supply, B, serial (gaps between)."""
    year = gdrq.astype("datetime64[Y]").astype(int) + 1970
    group = district * 10000 + year
    order = np.lexsort((np.arange(len(gdrq)), gdrq.astype(np.int64), group))
    steps = rng.integers(1, 4, len(gdrq))
    g = group[order]
    cs = np.cumsum(steps[order])
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    base = np.repeat(cs[starts] - steps[order][starts], np.diff(np.r_[starts, len(g)]))
    serial = np.empty(len(gdrq), np.int64)
    serial[order] = cs - base
    return np.array(
        [f"{geo.d_code[d]}{y}B{s:05d}" for d, y, s in zip(district, year, serial, strict=True)],
        dtype=object,
    )


def _approval_numbers(
    rng, pz_date: np.ndarray, district: np.ndarray, geo: _Geo
) -> tuple[np.ndarray, np.ndarray]:
    """批准文号 浙政土字〔2019〕123号 (some 杭政土字) and batch names, numbered within a year."""
    n = len(pz_date)
    year = pz_date.astype("datetime64[Y]").astype(int) + 1970
    prov = rng.random(n) < 0.8
    prefix = np.where(prov, "浙政土字", "杭政土字")
    nos = np.empty(n, dtype=object)
    batches = np.empty(n, dtype=object)
    steps = rng.integers(1, 7, n)
    for key in sorted(set(zip(prefix.tolist(), year.tolist(), strict=True))):
        idx = np.flatnonzero((prefix == key[0]) & (year == key[1]))
        idx = idx[np.lexsort((idx, pz_date[idx].astype(np.int64)))]
        serial = np.cumsum(steps[idx])
        for i, s in zip(idx, serial, strict=True):
            nos[i] = f"{key[0]}〔{key[1]}〕{s}号"
    for key in sorted(set(zip(district.tolist(), year.tolist(), strict=True))):
        idx = np.flatnonzero((district == key[0]) & (year == key[1]))
        idx = idx[np.lexsort((idx, pz_date[idx].astype(np.int64)))]
        name = geo.d_name[key[0]]
        place = name if name.endswith(("县", "市")) else f"杭州市{name}"
        for k, i in enumerate(idx, start=1):
            batches[i] = f"{place}{key[1]}年度第{k}批次城镇建设用地"
    return nos, batches


# --------------------------------------------------------------------------------------------
# Enterprises, output, projects, standards, statistics
# --------------------------------------------------------------------------------------------

# enterprise kinds
_PRIMARY, _CONTAINS, _NEAREST, _SHARED, _RENTED, _NOEVAL = range(6)


def _build_enterprises(
    rng: np.random.Generator, geo: _Geo, c: _Cells, land: _Land, ref: np.datetime64, scale: int
) -> dict:
    dk, gd = land.dk, land.gd
    nd = len(dk)
    in_use = dk.SJYT.isin(["工业", "创新型产业"]).to_numpy()
    is_plat = dk.plat.to_numpy() >= 0
    base = in_use & ~dk.low_ratio.to_numpy() & ~dk.overlap.to_numpy()
    contains = _pick(rng, np.flatnonzero(base & is_plat), 5 * scale)
    near_pool = np.flatnonzero(base & ~is_plat & (dk.row.to_numpy() == 0))
    nearest = _pick(rng, near_pool, 4 * scale)
    reserved = np.zeros(nd, bool)
    reserved[contains] = True
    reserved[nearest] = True

    rest = np.flatnonzero(in_use & ~reserved)
    cell = dk.cell.to_numpy()[rest]
    prev = np.r_[-2, cell[:-1]]
    new = (cell != prev + 1) | (dk.col.to_numpy()[rest] == 0) | (rng.random(len(rest)) < 0.6)
    run = np.cumsum(new) - 1
    n_primary = int(run[-1]) + 1
    run_size = np.bincount(run)
    single = rest[(run_size[run] == 1) & ~dk.low_ratio.to_numpy()[rest]]
    shared = _pick(rng, single, _count(0.025, len(rest), scale))
    declared_pair = rng.random(len(shared)) < 0.5

    n_rented = _count(0.03, n_primary, scale)
    n_noeval = _count(0.003, n_primary, scale)
    kind = np.concatenate(
        [
            np.full(n_primary, _PRIMARY),
            np.full(len(contains), _CONTAINS),
            np.full(len(nearest), _NEAREST),
            np.full(len(shared), _SHARED),
            np.full(n_rented, _RENTED),
            np.full(n_noeval, _NOEVAL),
        ]
    )
    ne = len(kind)
    # links enterprise -> parcel (with the share of the parcel's area counted as its land)
    e_sp = n_primary + len(contains) + len(nearest)
    link_e = np.concatenate(
        [run, n_primary + np.arange(len(contains) + len(nearest)), e_sp + np.arange(len(shared))]
    )
    link_p = np.concatenate([rest, contains, nearest, shared])
    link_listed = np.concatenate(
        [
            np.ones(len(rest), bool),
            np.zeros(len(contains) + len(nearest), bool),
            np.ones(len(shared), bool),
        ]
    )
    share = np.ones(len(link_e))
    pos_primary_shared = np.searchsorted(rest, shared)
    share[pos_primary_shared] = np.where(declared_pair, 0.7, 0.5)
    share[len(link_e) - len(shared) :] = np.where(declared_pair, 0.3, 0.5)
    area = dk.area.to_numpy()
    land_m2 = np.bincount(link_e, weights=share * area[link_p], minlength=ne)
    main_parcel = np.full(ne, -1)
    order = np.lexsort((link_p, link_e))
    first = np.r_[True, link_e[order][1:] != link_e[order][:-1]]
    main_parcel[link_e[order][first]] = link_p[order][first]

    # declared YDMJ
    ydmj = np.full(ne, np.nan)
    prim = np.flatnonzero(kind == _PRIMARY)
    decl = prim[rng.random(len(prim)) < 0.25]
    ydmj[decl] = np.round(land_m2[decl] * rng.uniform(0.97, 1.03, len(decl)), 1)
    shared_primary = run[pos_primary_shared]
    ydmj[shared_primary] = np.where(declared_pair, np.round(area[shared] * 0.7, 1), np.nan)
    sec = np.flatnonzero(kind == _SHARED)
    ydmj[sec] = np.where(declared_pair, np.round(area[shared] * 0.3, 1), np.nan)
    rented = np.flatnonzero(kind == _RENTED)
    ydmj[rented] = np.round(np.clip(rng.lognormal(np.log(4000), 0.7, len(rented)), 800, 30000), 1)
    land_m2[rented] = ydmj[rented]
    noeval = np.flatnonzero(kind == _NOEVAL)

    # points for firms without a parcel: > 250 m from any parcel or supply
    need = len(rented) + len(noeval)
    px, py = _free_points(rng, geo, land, need)

    # district, industry, size
    e_dist = np.full(ne, -1)
    has_p = main_parcel >= 0
    e_dist[has_p] = dk.district.to_numpy()[main_parcel[has_p]]
    e_dist[~has_p] = _locate(geo.d_poly, px, py)
    plat_of = np.where(has_p, dk.plat.to_numpy()[np.maximum(main_parcel, 0)], -1)
    e_tech = np.where(plat_of >= 0, geo.plat.tech.to_numpy()[np.maximum(plat_of, 0)], False)
    ind = np.where(
        e_tech,
        rng.choice(len(_IND_CODE), ne, p=_IND_W_TECH / _IND_W_TECH.sum()),
        rng.choice(len(_IND_CODE), ne, p=_IND_W_GENERAL / _IND_W_GENERAL.sum()),
    )
    size_score = np.log(np.maximum(land_m2, 500)) + rng.normal(0, 0.7, ne)
    gmys = np.zeros(ne, int)
    cut = np.quantile(size_score[prim], 0.55)
    gmys[prim] = size_score[prim] >= cut
    for k_, p_ in ((_CONTAINS, 0.5), (_NEAREST, 0.5), (_SHARED, 0.15), (_RENTED, 0.2)):
        m = kind == k_
        gmys[m] = rng.random(int(m.sum())) < p_

    # founding: most firms report all five years
    y1 = int(str(ref.astype("datetime64[Y]"))) - 1
    y0 = y1 - 4
    first_year = np.full(ne, y0)

    # planted evaluation cases, among established, unshared, non-utility primary firms
    shared_set = np.zeros(ne, bool)
    shared_set[shared_primary] = True
    cand = prim[~shared_set[prim] & ~_IND_UTILITY[ind[prim]]]
    cand_gen = cand[~e_tech[cand]]
    backward = _pick(rng, cand_gen, 3 * scale)
    ind[backward] = np.searchsorted(
        _IND_CODE, np.array(_BACKWARD_CODES)[np.arange(len(backward)) % len(_BACKWARD_CODES)]
    )
    gmys[backward] = 1
    left = np.setdiff1d(cand, backward)
    top_a = np.concatenate(
        [_pick(rng, left[gmys[left] == 1], 4 * scale), _pick(rng, left[gmys[left] == 0], 2 * scale)]
    )
    left = np.setdiff1d(left, top_a)
    bot_d = np.concatenate(
        [_pick(rng, left[gmys[left] == 1], 3 * scale), _pick(rng, left[gmys[left] == 0], 2 * scale)]
    )
    left = np.setdiff1d(left, bot_d)
    low_tax = _pick(rng, left, _count(0.01, n_primary, scale))
    left = np.setdiff1d(left, low_tax)
    planted = np.zeros(ne, bool)
    planted[np.concatenate([backward, top_a, bot_d, low_tax])] = True
    late_pool = np.flatnonzero(((kind == _PRIMARY) | (kind == _RENTED)) & ~planted)
    late = _pick(rng, late_pool, _count(0.05, len(late_pool), scale))
    first_year[late] = rng.integers(y0 + 1, y1 + 1, len(late))

    # names and codes (enterprises and, after them, holders of land not in the registry)
    holder_dk = np.flatnonzero(~in_use)
    gd_only = np.flatnonzero(gd.dk.to_numpy() < 0)
    building = gd_only[gd.cat.to_numpy()[gd_only] == "building"]
    to_firm = _pick(rng, building, len(building) // 2)
    grantee_firm = np.full(len(gd), -1)
    if len(to_firm):
        grantee_firm[to_firm] = rng.choice(left if len(left) else prim, len(to_firm), replace=False)
    gd_new_holder = np.setdiff1d(gd_only, to_firm)
    h_dist = np.concatenate(
        [dk.district.to_numpy()[holder_dk], gd.district.to_numpy()[gd_new_holder]]
    )
    nh = len(h_dist)
    all_dist = np.concatenate([e_dist, h_dist])
    codes = _usccs(rng, geo.d_code[all_dist])
    words = np.concatenate([_IND_WORD[ind], _HOLDER_WORDS[rng.integers(0, len(_HOLDER_WORDS), nh)]])
    names, cores = _names(rng, words, geo.d_name[all_dist], set())
    e_code, h_code = codes[:ne], codes[ne:]
    e_name, h_name = names[:ne], names[ne:]

    # holders of parcels and grantees of supplies
    qlr = np.empty(nd, dtype=object)
    qlrdm = np.empty(nd, dtype=object)
    holder_of = np.full(nd, -1)
    holder_of[link_p[::-1]] = link_e[::-1]  # first enterprise linked (primary before secondary)
    holder_of[rest] = run
    qlr[in_use] = e_name[holder_of[in_use]]
    qlrdm[in_use] = e_code[holder_of[in_use]]
    qlr[holder_dk] = h_name[: len(holder_dk)]
    qlrdm[holder_dk] = h_code[: len(holder_dk)]
    srr = np.empty(len(gd), dtype=object)
    srrdm = np.empty(len(gd), dtype=object)
    g_dk = gd.dk.to_numpy()
    srr[g_dk >= 0] = qlr[g_dk[g_dk >= 0]]
    srrdm[g_dk >= 0] = qlrdm[g_dk[g_dk >= 0]]
    srr[to_firm] = e_name[grantee_firm[to_firm]]
    srrdm[to_firm] = e_code[grantee_firm[to_firm]]
    srr[gd_new_holder] = h_name[len(holder_dk) :]
    srrdm[gd_new_holder] = h_code[len(holder_dk) :]
    g_ind = np.where(
        grantee_firm >= 0,
        ind[np.maximum(grantee_firm, 0)],
        rng.integers(0, len(_IND_CODE), len(gd)),
    )
    holder_ind_dk = np.full(nd, -1)
    holder_ind_dk[in_use] = ind[holder_of[in_use]]
    g_ind = np.where(
        g_dk >= 0,
        np.where(
            holder_ind_dk[np.maximum(g_dk, 0)] >= 0, holder_ind_dk[np.maximum(g_dk, 0)], g_ind
        ),
        g_ind,
    )

    # DKBH lists (only the links a registry would hold)
    dkbh = dk.DKBH.to_numpy()
    lst = pd.DataFrame({"e": link_e[link_listed], "p": dkbh[link_p[link_listed]]})
    lst = lst.sort_values(["e", "p"])
    joined = lst.groupby("e", sort=True)["p"].agg(";".join)
    e_dkbh = np.full(ne, "", dtype=object)
    e_dkbh[joined.index.to_numpy()] = joined.to_numpy()

    # points
    ex, ey = np.full(ne, np.nan), np.full(ne, np.nan)
    withp = np.flatnonzero(has_p & (kind != _NEAREST))
    corners = land.dk_corners[main_parcel[withp]]
    centre = corners.mean(1)
    corner = corners[np.arange(len(withp)), rng.integers(0, 4, len(withp))]
    t = rng.uniform(0, 0.6, len(withp))[:, None]
    pt = centre + t * (corner - centre)
    ex[withp], ey[withp] = pt[:, 0], pt[:, 1]
    cells_n = dk.cell.to_numpy()[nearest]
    blk = c.blk[cells_n]
    gap = rng.uniform(15, 35, len(nearest))
    lx = (c.lx0[cells_n] + c.lx1[cells_n]) / 2
    ly = c.ly0[cells_n] + dk.inset.to_numpy()[nearest] - gap
    ex[n_primary + len(contains) : e_sp], ey[n_primary + len(contains) : e_sp] = _to_world(
        lx, ly, c.b_cx[blk], c.b_cy[blk], c.b_cos[blk], c.b_sin[blk]
    )
    nop = np.concatenate([rented, noeval])
    ex[nop], ey[nop] = px, py
    blank_pt = noeval[rng.random(len(noeval)) < 0.5]
    ex[blank_pt], ey[blank_pt] = np.nan, np.nan

    zbxt = rng.choice(np.array(["gcj02", "", "EPSG:4549"], dtype=object), ne, p=[0.85, 0.10, 0.05])
    contains_idx = n_primary + np.arange(len(contains))
    zbxt[contains_idx] = np.where(rng.random(len(contains)) < 0.7, "gcj02", "")
    zbxt[np.isnan(ex)] = ""
    lon, lat = _FROM_GK.transform(ex, ey)
    glon, glat = wgs84_to_gcj02(lon, lat)
    metric = zbxt == "EPSG:4549"
    qx = np.where(metric, np.round(ex, 2), np.round(glon, 6))
    qy = np.where(metric, np.round(ey, 2), np.round(glat, 6))

    return {
        "kind": kind,
        "code": e_code,
        "name": e_name,
        "core": cores[:ne],
        "ind": ind,
        "gmys": gmys,
        "dkbh": e_dkbh,
        "x": qx,
        "y": qy,
        "zbxt": zbxt,
        "district": e_dist,
        "land_m2": land_m2,
        "ydmj": ydmj,
        "first_year": first_year,
        "y0": y0,
        "y1": y1,
        "main_parcel": main_parcel,
        "link_e": link_e,
        "link_p": link_p,
        "share": share,
        "top_a": top_a,
        "bot_d": bot_d,
        "backward": backward,
        "low_tax": low_tax,
        "contains": contains_idx,
        "nearest": n_primary + len(contains) + np.arange(len(nearest)),
        "shared_parcels": shared,
        "rented": rented,
        "noeval": noeval,
        "qlr": qlr,
        "qlrdm": qlrdm,
        "srr": srr,
        "srrdm": srrdm,
        "g_ind": g_ind,
        "grantee_firm": grantee_firm,
        "all_code": codes,
        "all_core": cores,
        "planted": planted,
    }


def _free_points(rng, geo: _Geo, land: _Land, need: int) -> tuple[np.ndarray, np.ndarray]:
    """Points near district centres, more than 250 m from any parcel or supply polygon."""
    tree = shapely.STRtree(np.concatenate([land.dk_poly, land.gd_poly]))
    w = np.where(geo.d_main == 1, 3.0, 1.0)
    xs, ys = [], []
    got = 0
    while got < need:
        m = max(4 * need, 50)
        d = rng.choice(len(w), m, p=w / w.sum())
        x = geo.d_xy[d, 0] + rng.normal(0, 4000, m)
        y = geo.d_xy[d, 1] + rng.normal(0, 4000, m)
        pts = shapely.points(x, y)
        ok = shapely.contains_xy(geo.envelope, x, y)
        hit, _ = tree.query(pts, predicate="dwithin", distance=250.0)
        ok[hit] = False
        xs.append(x[ok])
        ys.append(y[ok])
        got += int(ok.sum())
    return np.concatenate(xs)[:need], np.concatenate(ys)[:need]


def _build_output(rng: np.random.Generator, e: dict) -> pd.DataFrame:
    ne = len(e["kind"])
    ind, gmys = e["ind"], e["gmys"]
    mu = e["land_m2"] * MU_PER_M2
    noeval = e["noeval"]
    mu[noeval] = rng.uniform(3, 30, len(noeval))
    tpm = np.where(
        gmys == 1,
        np.clip(rng.lognormal(np.log(22), 0.45, ne), 7, 90),
        np.clip(rng.lognormal(np.log(12), 0.4, ne), 6, 60),
    )
    vapm = tpm * rng.uniform(5, 9, ne)
    va_rate = rng.uniform(0.2, 0.3, ne)
    ep = rng.lognormal(np.log(2.5), 0.5, ne) * np.where(_IND_HEAVY[ind], 0.35, 1.0)
    pp = rng.lognormal(np.log(150), 0.6, ne) * np.where(_IND_HEAVY[ind], 0.3, 1.0)
    rd = np.where(_IND_RD[ind], rng.uniform(0.03, 0.08, ne), rng.uniform(0.005, 0.035, ne))
    lp = rng.uniform(15, 45, ne)
    a, d, lt = e["top_a"], np.concatenate([e["bot_d"], e["backward"]]), e["low_tax"]
    tpm[a] = rng.uniform(150, 250, len(a))
    vapm[a] = rng.uniform(1200, 2000, len(a))
    va_rate[a] = 0.3
    ep[a] *= 5
    pp[a] *= 5
    rd[a] = rng.uniform(0.08, 0.12, len(a))
    lp[a] = rng.uniform(80, 120, len(a))
    tpm[d] = rng.uniform(0.2, 1.0, len(d))
    vapm[d] = rng.uniform(3, 10, len(d))
    va_rate[d] = 0.15
    ep[d] = 0.2
    pp[d] = 5.0
    rd[d] = 0.001
    lp[d] = rng.uniform(2, 4, len(d))
    tpm[lt] = rng.uniform(2, 4.5, len(lt))
    vapm[lt] = tpm[lt] * rng.uniform(5, 8, len(lt))

    y1 = e["y1"]
    nyears = y1 - e["first_year"] + 1
    idx = np.repeat(np.arange(ne), nyears)
    start = np.repeat(np.cumsum(nyears) - nyears, nyears)
    year = e["first_year"][idx] + (np.arange(len(idx)) - start)
    growth = rng.normal(0.06, 0.04, ne)
    noise = rng.normal(0, 0.04, len(idx))
    noise[year == y1] = 0.0
    factor = np.exp(-growth[idx] * (y1 - year) + noise)
    va = vapm[idx] * mu[idx] * factor
    tax = tpm[idx] * mu[idx] * factor
    gross = va / va_rate[idx]
    rev = gross * rng.uniform(0.92, 1.08, len(idx))
    zhnh = va / ep[idx] * np.exp(rng.normal(0, 0.03, len(idx)))
    pfdl = va / pp[idx] * np.exp(rng.normal(0, 0.03, len(idx)))
    yffy = rev * rd[idx]
    cyrs = np.maximum(1, np.round(va / lp[idx]))
    miss_ok = (gmys[idx] == 1) & ~e["planted"][idx]
    zhnh[miss_ok & (rng.random(len(idx)) < 0.006)] = np.nan
    pfdl[miss_ok & (rng.random(len(idx)) < 0.006)] = np.nan
    cc = pd.DataFrame(
        {
            "TYSHXYDM": e["code"][idx],
            "ND": year,
            "GYZCZ": np.round(gross, 2),
            "YYSR": np.round(rev, 2),
            "GYZJZ": np.round(va, 2),
            "SJSJ": np.round(tax, 2),
            "ZHNH": np.round(zhnh, 1),
            "PFDL": np.round(pfdl, 2),
            "YFFY": np.round(yffy, 2),
            "CYRS": cyrs.astype(int),
            "YDMJ": e["ydmj"][idx],
            "_e": idx,
        }
    )
    return cc


def _build_projects(rng, land: _Land, e: dict, ref: np.datetime64) -> pd.DataFrame:
    gd, dk = land.gd, land.dk
    sel = np.flatnonzero(gd.GDRQ.to_numpy() >= _d("2015-01-01"))
    cat = gd.cat.to_numpy()[sel]
    sjkg = gd.SJKGSJ.to_numpy()[sel]
    sjjg = gd.SJJGSJ.to_numpy()[sel]
    status = np.full(len(sel), "在建", dtype=object)
    status[~np.isnat(sjjg)] = "投产"
    status[np.isnat(sjkg)] = "未开工"
    status[np.isin(cat, ["partial_idle", "stopped_under_1y"])] = "停建"
    tcrq = np.where(status == "投产", np.minimum(sjjg + _days(rng, 0, 120, len(sel)), ref), _NAT)
    g_dk = gd.dk.to_numpy()[sel]
    with_dk = g_dk >= 0
    dkbh_all = dk.DKBH.to_numpy()
    x_dkbh = np.where(
        with_dk & (rng.random(len(sel)) < 0.5), dkbh_all[np.maximum(g_dk, 0)], ""
    ).astype(object)
    x_dzjgh = gd.DZJGH.to_numpy()[sel].copy()
    blank = with_dk & (rng.random(len(sel)) < 0.05)
    x_dzjgh[blank] = ""
    x_dkbh[blank] = dkbh_all[g_dk[blank]]
    g_ind = e["g_ind"][sel]
    core = _project_core(e, sel)
    amount = rng.integers(2, 51, len(sel))
    xmmc = (
        core
        + "年产"
        + amount.astype(str).astype(object)
        + "万"
        + _IND_UNIT[g_ind]
        + _IND_PRODUCT[g_ind]
        + "新建项目"
    )
    a = pd.DataFrame(
        {
            "TYSHXYDM": e["srrdm"][sel],
            "DZJGH": x_dzjgh,
            "DKBH": x_dkbh,
            "JHTZ": gd.YDTZ.to_numpy()[sel],
            "LJWCTZ": gd.SJTZ.to_numpy()[sel],
            "XMZT": status,
            "KGRQ": sjkg,
            "TCRQ": tcrq,
            "XMMC": xmmc,
            "ind": g_ind,
            "year": gd.GDRQ.to_numpy()[sel].astype("datetime64[Y]").astype(int) + 1970,
            "district": gd.district.to_numpy()[sel],
        }
    )
    # technical renovation on firms' parcels
    prim = np.flatnonzero((e["kind"] == _PRIMARY) & (e["main_parcel"] >= 0))
    tg = _pick(rng, prim, round(0.08 * len(prim)))
    k = len(tg)
    kg = _between(rng, _d("2019-01-01"), ref - 60, k)
    tc = kg + _days(rng, 180, 540, k)
    done = tc <= ref
    jhtz = np.round(np.clip(rng.lognormal(np.log(3000), 0.8, k), 300, 50000), 2)
    kind_name = np.where(rng.random(k) < 0.5, "技术改造项目", "智能化改造项目")
    b = pd.DataFrame(
        {
            "TYSHXYDM": e["code"][tg],
            "DZJGH": "",
            "DKBH": dkbh_all[e["main_parcel"][tg]],
            "JHTZ": jhtz,
            "LJWCTZ": np.round(
                jhtz * np.where(done, rng.uniform(0.9, 1.1, k), rng.uniform(0.2, 0.8, k)), 2
            ),
            "XMZT": np.where(done, "投产", "在建"),
            "KGRQ": kg,
            "TCRQ": np.where(done, tc, _NAT),
            "XMMC": e["core"][tg] + _IND_PRODUCT[e["ind"][tg]] + kind_name.astype(object),
            "ind": e["ind"][tg],
            "year": kg.astype("datetime64[Y]").astype(int) + 1970,
            "district": e["district"][tg],
        }
    )
    xm = pd.concat([a, b], ignore_index=True)
    n = len(xm)
    group = xm.year.to_numpy() * 100 + xm.district.to_numpy()
    steps = rng.integers(1, 40, n)
    serial = pd.Series(steps).groupby(group).cumsum().to_numpy()
    d_codes = np.array([d[0] for d in _DISTRICTS])
    xm["XMDM"] = [
        f"{y}-{d_codes[d]}-{_IND_CODE[i][:2]}-03-{s:06d}"
        for y, d, i, s in zip(xm.year, xm.district, xm.ind, serial, strict=True)
    ]
    xm["KGRQ"] = _fmt_dates(xm.KGRQ.to_numpy().astype("datetime64[D]"), "slash")
    xm["TCRQ"] = _fmt_dates(xm.TCRQ.to_numpy().astype("datetime64[D]"), "slash")
    cols = ["XMDM", "XMMC", "TYSHXYDM", "DZJGH", "DKBH", "JHTZ", "LJWCTZ", "XMZT", "KGRQ", "TCRQ"]
    return xm[cols].sort_values("XMDM").reset_index(drop=True)


def _project_core(e: dict, sel: np.ndarray) -> np.ndarray:
    """Short name (the invented syllables) of the grantee of each selected supply record."""
    core_by_code = dict(zip(e["all_code"], e["all_core"], strict=True))
    return np.array([core_by_code[c] for c in e["srrdm"][sel]], dtype=object)


def _build_standards(rng, e: dict, cc: pd.DataFrame) -> pd.DataFrame:
    y1 = e["y1"]
    rows = []
    kinds = list(_BD_NOTES)
    for i in e["backward"]:
        rows.append((e["code"][i], y1, "环境保护"))
        rows.append((e["code"][i], y1, "节能降耗"))
        if rng.random() < 0.5:
            rows.append((e["code"][i], y1 - 1, "环境保护"))
    ne = len(e["kind"])
    heavy = _IND_HEAVY[e["ind"]]
    w = np.where(heavy, 4.0, 1.0)
    k = max(20, round(0.012 * ne))
    pick = rng.choice(ne, k, p=w / w.sum())
    years = rng.integers(e["first_year"][pick], y1 + 1)
    kk = rng.choice(len(kinds), k, p=[0.3, 0.35, 0.2, 0.15])
    rows += [(e["code"][i], int(y), kinds[j]) for i, y, j in zip(pick, years, kk, strict=True)]
    bd = pd.DataFrame(rows, columns=["TYSHXYDM", "ND", "BDLX"]).drop_duplicates(
        ["TYSHXYDM", "ND", "BDLX"]
    )
    bd = bd.sort_values(["TYSHXYDM", "ND", "BDLX"]).reset_index(drop=True)
    notes = [_BD_NOTES[b][int(rng.integers(0, len(_BD_NOTES[b])))] for b in bd.BDLX]
    bd["SM"] = notes
    return bd


def _build_stats(rng, geo: _Geo, land: _Land, y0: int, y1: int) -> pd.DataFrame:
    dk_area = np.bincount(
        land.dk.district.to_numpy(), weights=land.dk.area.to_numpy(), minlength=len(geo.d_code)
    )
    # statistics count more land than the survey holds (and some where it holds none)
    land_base = np.maximum(dk_area * rng.uniform(1.05, 1.15, len(dk_area)), 200000.0)
    rows = []
    for i, d in enumerate(_DISTRICTS):
        gdp = d[6] * 1e4
        for y in range(y1, y0 - 1, -1):
            rows.append(
                (
                    d[0],
                    y,
                    round(gdp, 0),
                    round(gdp * d[7] * float(rng.normal(1, 0.03)), 0),
                    round(land_base[i] * (1 - 0.008 * (y1 - y)) * float(rng.normal(1, 0.004)), 0),
                )
            )
            gdp /= float(rng.normal(1.055, 0.015))
    tj = pd.DataFrame(rows, columns=["XZQDM", "ND", "GDP", "GYZJZ", "GYYDMJ"])
    tj[["GDP", "GYZJZ", "GYYDMJ"]] = tj[["GDP", "GYZJZ", "GYYDMJ"]].astype(np.int64)
    return tj.sort_values(["XZQDM", "ND"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Targets (MB)
# --------------------------------------------------------------------------------------------

# ZB -> (levels it is set for, better, decimals). §7 indicators by their Chinese name
# (gis/core/vocabulary.py "indicator"); PH_* and TT for districts, which the plan gives the
# yearly 盘活 and 淘汰 tasks.
_TARGET_SET = {
    "亩均产值": (("区县", "平台"), "higher", 1),
    "亩均税收": (("区县", "平台"), "higher", 1),
    "工业增加值占GDP比重": (("区县",), "higher", 1),
    "单位工业增加值能耗": (("区县",), "lower", 3),
    "平台产值占比": (("平台",), "higher", 2),
    "高新技术产业产值占比": (("区县", "平台"), "higher", 1),
    "PH_PEWG": (("区县",), "higher", 0),
    "PH_GEWY": (("区县",), "higher", 0),
    "PH_DX": (("区县",), "higher", 0),
    "TT": (("区县",), "higher", 0),
}
_TARGET_NOTES = {
    "亩均产值": "{y}年度亩均产值考核指标",
    "亩均税收": "{y}年度亩均税收考核指标",
    "工业增加值占GDP比重": "两底线：{y}年工业增加值占GDP比重不低于目标",
    "单位工业增加值能耗": "两降低：{y}年单位工业增加值能耗不高于目标",
    "平台产值占比": "四提升：{y}年平台产值占全市比重",
    "高新技术产业产值占比": "四提升：{y}年高新技术产业产值占比",
    "PH_PEWG": "{y}年度存量土地盘活计划：批而未供土地",
    "PH_GEWY": "{y}年度存量土地盘活计划：供而未用/闲置土地",
    "PH_DX": "{y}年度存量土地盘活计划：低效用地",
    "TT": "{y}年度淘汰落后产能目标",
}
# high-tech industries (gis/core/rules.py IndicatorRules.high_tech_prefixes, the default)
_HIGH_TECH = ("27", "374", "39", "358", "40", "2664", "2665")


def _build_targets(
    geo: _Geo, land: _Land, e: dict, cc: pd.DataFrame, tj: pd.DataFrame, seed: int
) -> pd.DataFrame:
    """MB: targets for every district and platform in the latest two CC years, each an estimate
    of the zone's figure from the generated data times a factor that makes it about half met
    (0.70-0.88 of the figure) and half behind (1.15-1.40; inverted for lower-is-better), drawn
    from a generator of its own so that every other layer stays as it was. 盘活 targets are a
    share of the district's flagged land, 淘汰 of its backward-capacity firms."""
    rng = np.random.default_rng([seed, 0x4D42])  # "MB"
    years = sorted(cc.ND.unique())[-2:]
    # each firm's zones: its main parcel's district and platform (rented land: its district)
    mp = e["main_parcel"]
    e_plat = np.where(mp >= 0, land.dk.plat.to_numpy()[np.maximum(mp, 0)], -1)
    e_dist = e["district"]
    mu = e["land_m2"] * MU_PER_M2
    hightech = np.array([any(c.startswith(p) for p in _HIGH_TECH) for c in _IND_CODE[e["ind"]]])
    f = cc.assign(dist=e_dist[cc._e], plat=e_plat[cc._e], mu=mu[cc._e], ht=hightech[cc._e]).assign(
        ht_out=lambda d: d.GYZCZ.where(d.ht, 0.0)
    )
    f = f[f.mu > 0]
    est: dict[tuple, float] = {}
    for year in years:
        fy = f[f.ND == year]
        city = fy.GYZCZ.sum()
        for lv, col, codes in (
            ("区县", "dist", geo.d_code),
            ("平台", "plat", geo.plat.ptdm.to_numpy()),
        ):
            g = fy[fy[col] >= 0].groupby(col)
            sums = g[["GYZCZ", "SJSJ", "GYZJZ", "ZHNH", "mu", "ht_out"]].sum()
            for i, r in sums.iterrows():
                z = (year, lv, codes[int(i)])
                est[(*z, "亩均产值")] = r.GYZCZ / r.mu
                est[(*z, "亩均税收")] = r.SJSJ / r.mu
                est[(*z, "高新技术产业产值占比")] = r.ht_out / r.GYZCZ * 100
                if lv == "平台":
                    est[(*z, "平台产值占比")] = r.GYZCZ / city * 100
                else:
                    est[(*z, "单位工业增加值能耗")] = r.ZHNH / r.GYZJZ
        for r in tj[tj.ND == year].itertuples():
            est[(year, "区县", r.XZQDM, "工业增加值占GDP比重")] = r.GYZJZ / r.GDP * 100
    # flagged land per district (亩): unsupplied remainders, idle supplies, low-efficiency parcels
    gd = land.gd
    flagged_gd = gd.cat.isin(["overdue", "idle", "idle_reclaimable", "partial_idle"]).to_numpy()
    idle_mu = np.bincount(
        gd.district.to_numpy()[flagged_gd],
        weights=gd.area.to_numpy()[flagged_gd] * MU_PER_M2,
        minlength=len(geo.d_code),
    )
    dk = land.dk
    low = (dk.low_ratio | dk.SJYT.isin(["挪作他用", "闲置"])).to_numpy()
    low_mu = np.bincount(
        dk.district.to_numpy()[low],
        weights=dk.area.to_numpy()[low] * MU_PER_M2,
        minlength=len(geo.d_code),
    )
    tree = shapely.STRtree(land.gd_poly)
    pi, gi = tree.query(land.pz_poly, predicate="intersects")
    covered = np.bincount(
        pi,
        weights=shapely.area(shapely.intersection(land.pz_poly[pi], land.gd_poly[gi])),
        minlength=len(land.pz_poly),
    )
    left = np.maximum(shapely.area(land.pz_poly) - covered, 0.0) * MU_PER_M2
    c = shapely.centroid(land.pz_poly)
    pz_dist = _locate(geo.d_poly, shapely.get_x(c), shapely.get_y(c))
    unsup_mu = np.bincount(pz_dist, weights=left, minlength=len(geo.d_code))
    backward = np.bincount(e_dist[e["backward"]], minlength=len(geo.d_code))
    for year in years:
        for i, code in enumerate(geo.d_code):
            z = (year, "区县", code)
            est[(*z, "PH_PEWG")] = unsup_mu[i]
            est[(*z, "PH_GEWY")] = idle_mu[i]
            est[(*z, "PH_DX")] = low_mu[i]
            est[(*z, "TT")] = float(backward[i])
    units = {"区县": dict(zip(geo.d_code, geo.d_name, strict=True))}
    units["平台"] = dict(zip(geo.plat.ptdm, geo.plat.name, strict=True))
    rows = []
    for key in sorted(est):
        year, lv, code, zb = key
        levels, better, digits = _TARGET_SET[zb]
        value = est[key]
        if lv not in levels or not np.isfinite(value) or value <= 0:
            continue
        if zb.startswith("PH_"):  # a share of the flagged land, whole 亩
            target = max(1.0, round(value * float(rng.uniform(0.2, 0.4))))
        elif zb == "TT":
            target = float(max(1, round(value * float(rng.uniform(0.3, 0.7)))))
        else:
            met = rng.random() < 0.5
            factor = float(rng.uniform(0.70, 0.88) if met else rng.uniform(1.15, 1.40))
            if better == "lower":
                factor = 1 / factor
            target = round(value * factor, digits)
            if zb.endswith("比重") or zb.endswith("占比"):  # a percentage: at most 100
                target = min(target, 100.0)
        unit = units[lv][code] + ("人民政府" if lv == "区县" else "管委会")
        rows.append((year, lv, code, zb, target, unit, _TARGET_NOTES[zb].format(y=year)))
    return pd.DataFrame(rows, columns=["ND", "JB", "DM", "ZB", "MBZ", "ZRDW", "SM"])


# --------------------------------------------------------------------------------------------
# Planted cases
# --------------------------------------------------------------------------------------------


def _planted(
    geo: _Geo,
    land: _Land,
    e: dict,
    cc: pd.DataFrame,
    ref: np.datetime64,
    reference_date: date,
    seed: int,
    scale: int,
) -> dict:
    gd, dk = land.gd, land.dk
    g_dk = gd.dk.to_numpy()
    fp_ratio = np.full(len(gd), np.nan)
    fp_ratio[g_dk >= 0] = (dk.JZJDMJ.to_numpy() / dk.area.to_numpy())[g_dk[g_dk >= 0]]
    masks = classify_supplies(
        ref,
        gd.HTKGSJ.to_numpy(),
        gd.SJKGSJ.to_numpy(),
        gd.TGRQ.to_numpy(),
        gd.YKFMJ.to_numpy(),
        gd.area.to_numpy(),
        gd.SJTZ.to_numpy(),
        gd.YDTZ.to_numpy(),
        fp_ratio,
    )
    cat = gd.cat.to_numpy()
    for name, m in masks.items():  # the generator's intent and the rule must agree
        if not np.array_equal(m, cat == name):
            raise AssertionError(f"planted supply category {name} does not follow the rule")
    dzjgh = gd.DZJGH.to_numpy()
    idle = {name: sorted(dzjgh[m].tolist()) for name, m in masks.items()}

    unsup = {
        "fully_unsupplied": sorted(land.pz_no[land.pz_kind == 2].tolist()),
        "partly": sorted(land.pz_no[land.pz_kind == 1].tolist()),
        "fully_supplied": sorted(land.pz_no[land.pz_kind == 0].tolist()),
    }

    dkbh = dk.DKBH.to_numpy()
    sjyt = dk.SJYT.to_numpy()
    ratio = dk.JZMJ.to_numpy() / dk.area.to_numpy()
    low_ratio = (sjyt != "闲置") & (ratio < dk.thr.to_numpy())
    last = cc[cc.ND == e["y1"]]
    tax_e = np.zeros(len(e["kind"]))
    tax_e[last._e.to_numpy()] = last.SJSJ.to_numpy()
    le, lp, sh = e["link_e"], e["link_p"], e["share"]
    area = dk.area.to_numpy()
    land_e = e["land_m2"]
    p_tax = np.bincount(lp, weights=tax_e[le] * sh * area[lp] / land_e[le], minlength=len(dk))
    linked = np.bincount(lp, minlength=len(dk)) > 0
    low_tax = linked & (p_tax / (area * MU_PER_M2) < TAX_PER_MU_FLOOR)
    low_eff = {
        "plot_ratio": sorted(dkbh[low_ratio].tolist()),
        "diverted": sorted(dkbh[sjyt == "挪作他用"].tolist()),
        "idle_use": sorted(dkbh[sjyt == "闲置"].tolist()),
        "tax_per_mu": sorted(dkbh[low_tax].tolist()),
    }

    code = e["code"]
    plat = geo.plat
    hosts = (plat.level == "国家级") | ((plat.level == "省级") & (plat.ptype == "经济开发区"))
    host_polys = plat.poly[hosts].to_numpy()
    ptdm = plat.ptdm.to_numpy()
    main = dict(zip(geo.d_code, geo.d_main, strict=True))
    kinds: dict[str, list[str]] = {
        "host": [],
        "trusteeship": [],
        "innovation": [],
        "exit": [],
        "retain_or_exit": [],
    }
    for i, p in enumerate(plat.itertuples()):
        if hosts.iloc[i]:
            kinds["host"].append(ptdm[i])
        elif shapely.distance(p.poly, host_polys).min() <= HOST_DISTANCE_M:
            kinds["trusteeship"].append(ptdm[i])
        elif main[p.district] == 1:
            kinds["innovation"].append(ptdm[i])
        elif not p.tscy or p.poly.area < 1e6:
            kinds["exit"].append(ptdm[i])
        else:
            kinds["retain_or_exit"].append(ptdm[i])

    return {
        "reference_date": reference_date.isoformat(),
        "seed": seed,
        "scale": scale,
        "evaluation_year": e["y1"],
        "notes": {
            "idle": "supply records (DZJGH) by DOMAIN_RULES §3 as of reference_date; every record "
            "of each kind is listed; records_disagree: started, parcel footprint < 5 %",
            "unsupplied": "approvals (PZWH) by how much of them supply records cover",
            "low_efficiency": "parcels (DKBH); plot_ratio: SJYT not 闲置 and JZMJ/area below the "
            "linked supply's RJLXX (1.0 without); tax_per_mu: parcels with "
            "linked firms paying < 5 万元/亩 in evaluation_year",
            "evaluation": "planted firms (USCC) with extreme per-mu figures in every year; "
            "A within the top 25 % and D within the last 5 % of their group",
            "spatial_link": "contains_gcj02 / nearest: firms with empty DKBH; supply_overlap: "
            "parcels (DKBH) with blank DZJGH whose supply polygon covers them",
            "platforms": "PTDM by DOMAIN_RULES §4 from geometry; retain_or_exit depends on "
            "亩均税收 against the city median",
        },
        "idle": idle,
        "unsupplied": unsup,
        "low_efficiency": low_eff,
        "evaluation": {
            "A": sorted(code[e["top_a"]].tolist()),
            "D": sorted(code[np.concatenate([e["bot_d"], e["backward"]])].tolist()),
        },
        "backward_capacity": sorted(code[e["backward"]].tolist()),
        "spatial_link": {
            "contains_gcj02": sorted(code[e["contains"]].tolist()),
            "nearest": sorted(code[e["nearest"]].tolist()),
            "supply_overlap": sorted(dkbh[dk.overlap.to_numpy()].tolist()),
        },
        "rented": sorted(code[e["rented"]].tolist()),
        "shared_parcel": sorted(dkbh[e["shared_parcels"]].tolist()),
        "not_evaluated": sorted(code[e["noeval"]].tolist()),
        "not_industrial": sorted(dkbh[dk.DLBM.to_numpy() == "0702"].tolist()),
        "platforms": {k: sorted(v) for k, v in kinds.items()},
    }


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------

_SHP_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")


def _write_shp(gdf: gpd.GeoDataFrame, path: Path, stamp: str, cpg: bool = True) -> None:
    for ext in _SHP_PARTS:
        path.with_suffix(ext).unlink(missing_ok=True)
    pyogrio.write_dataframe(
        gdf,
        path,
        driver="ESRI Shapefile",
        encoding="GBK",
        layer_options={"DBF_DATE_LAST_UPDATE": stamp, "RESIZE": "YES"},
    )
    if not cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)


_CORE_XML = (
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
    'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<dc:creator>openpyxl</dc:creator>"
    '<dcterms:created xsi:type="dcterms:W3CDTF">{iso}</dcterms:created>'
    '<dcterms:modified xsi:type="dcterms:W3CDTF">{iso}</dcterms:modified>'
    "</cp:coreProperties>"
)

# The workbook part as openpyxl writes it without lxml (with lxml the ``r`` namespace is
# declared on <sheet> instead): written whole, so the file does not depend on which is installed.
_WORKBOOK_XML = (
    '<workbook xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><workbookPr />'
    '<workbookProtection /><bookViews><workbookView visibility="visible" minimized="0" '
    'showHorizontalScroll="1" showVerticalScroll="1" showSheetTabs="1" tabRatio="600" '
    'firstSheet="0" activeTab="0" autoFilterDateGrouping="1" /></bookViews><sheets>'
    '<sheet name="{sheet}" sheetId="1" state="visible" r:id="rId1" /></sheets>'
    '<definedNames /><calcPr calcId="124519" fullCalcOnLoad="1" /></workbook>'
)
_CHAR_REF = re.compile(r"&#(\d+);")
_TIGHT_EMPTY = re.compile(r"(?<! )/>")


def _xml_as_etree_writes(data: bytes) -> bytes:
    """An XML part of openpyxl's in the form its ElementTree writer gives (the committed sample's):
    lxml writes non-ASCII text as character references and empty elements as ``<a/>``, where
    ElementTree writes the characters and ``<a />``. Identity on ElementTree's output; text and
    attribute values hold neither pattern (``&`` and ``>`` are escaped)."""
    s = data.decode("utf-8")
    s = _CHAR_REF.sub(lambda m: chr(int(m.group(1))) if int(m.group(1)) > 127 else m.group(0), s)
    return _TIGHT_EMPTY.sub(" />", s).encode("utf-8")


def _write_xlsx(df: pd.DataFrame, path: Path, stamp: date) -> None:
    """First sheet, no timestamps: document dates and zip entry times are pinned, and the XML
    parts are the same whether openpyxl writes them with lxml or with ElementTree."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    # the document's dates: pinned here, and again in the XML below (whatever writes it)
    pinned = datetime(stamp.year, stamp.month, stamp.day)
    wb.properties.created = pinned
    wb.properties.modified = pinned
    ws = wb.create_sheet("QY")
    ws.append(list(df.columns))
    values = df.astype(object).where(df.notna(), None).to_numpy().tolist()
    for row in values:
        ws.append([None if v == "" else v for v in row])
    buf = io.BytesIO()
    wb.save(buf)
    iso = f"{stamp.isoformat()}T00:00:00Z"
    with (
        zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # written whole: nothing in it varies
                data = _CORE_XML.format(iso=iso).encode("utf-8")
            elif info.filename == "xl/workbook.xml":
                data = _WORKBOOK_XML.format(sheet="QY").encode("utf-8")
            elif info.filename != "xl/theme/theme1.xml":  # the theme: one constant in openpyxl
                data = _xml_as_etree_writes(data)
            zi = zipfile.ZipInfo(
                info.filename, date_time=(stamp.year, stamp.month, stamp.day, 0, 0, 0)
            )
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, data)


_MANIFEST = """[PT]
encoding = "GBK"

[QY]
crs = "gcj02"   # default for rows whose ZBXT is empty
"""


def generate(
    out_dir: str | Path,
    scale: int = 1,
    seed: int = DEFAULT_SEED,
    reference_date: date = DEFAULT_REFERENCE_DATE,
) -> dict:
    """Write the sample city into ``out_dir``; return {layer code: rows, "files": [...]}.

    ``scale`` multiplies parcels, supplies, approvals, enterprises, output rows and projects
    (platforms grow in area); scale 1 gives about 5,300 parcels and 4,100 enterprises.
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, not {scale!r}")
    scale = int(scale)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ref = np.datetime64(reference_date, "D")
    stamp = reference_date.isoformat()

    geo = _build_geography(rng, scale)
    ptdm = []
    seen: dict[str, int] = {}
    for d in geo.plat.district:
        seen[d] = seen.get(d, 0) + 1
        ptdm.append(f"PT{d}{seen[d]:03d}")
    geo.plat["ptdm"] = ptdm
    cells = _build_cells(rng, geo, scale)
    land = _build_land(rng, geo, cells, ref, scale)
    ent = _build_enterprises(rng, geo, cells, land, ref, scale)
    cc = _build_output(rng, ent)
    xm = _build_projects(rng, land, ent, ref)
    bd = _build_standards(rng, ent, cc)
    tj = _build_stats(rng, geo, land, ent["y0"], ent["y1"])
    planted = _planted(geo, land, ent, cc, ref, reference_date, seed, scale)

    crs = f"EPSG:{STORAGE_SRID}"
    counts: dict[str, int] = {}
    xzq = gpd.GeoDataFrame(
        {"XZQDM": geo.d_code, "XZQMC": geo.d_name, "ZCQ": geo.d_main}, geometry=geo.d_poly, crs=crs
    ).sort_values("XZQDM")
    _write_shp(xzq, out / "XZQ.shp", stamp)
    counts["XZQ"] = len(xzq)

    p = geo.plat
    pt = gpd.GeoDataFrame(
        {
            "PTDM": p["ptdm"],
            "PTMC": p["name"],
            "PTJB": p["level"],
            "PTLX": p["ptype"],
            "XZQDM": p["district"],
            "TSCY": p["tscy"],
            "FMQD": p["fmqd"],
        },
        geometry=p.poly.to_numpy(),
        crs=crs,
    ).sort_values("PTDM")
    _write_shp(pt.to_crs("EPSG:4490"), out / "PT.shp", stamp, cpg=False)
    counts["PT"] = len(pt)

    zl = gpd.GeoDataFrame(
        {"ZLDM": [z[0] for z in geo.corridors], "ZLMC": [z[1] for z in geo.corridors]},
        geometry=[z[2] for z in geo.corridors],
        crs=crs,
    ).sort_values("ZLDM")
    _write_shp(zl, out / "ZL.shp", stamp)
    counts["ZL"] = len(zl)

    pz = gpd.GeoDataFrame(
        {
            "PZWH": land.pz_no,
            "PCMC": land.pz_batch,
            "PZRQ": _fmt_dates(land.pz_date, "compact"),
            "PZMJ": land.pz_area,
            "_d": land.pz_date,
        },
        geometry=land.pz_poly,
        crs=crs,
    )
    pz = pz.sort_values(["_d", "PZWH"]).drop(columns="_d")
    _write_shp(pz, out / "PZ.shp", stamp)
    counts["PZ"] = len(pz)

    g = land.gd
    gd_out = pd.DataFrame(
        {
            "DZJGH": g.DZJGH,
            "GDFS": g.GDFS,
            "TDYT": g.TDYT,
            "GDRQ": _fmt_dates(g.GDRQ.to_numpy(), "iso"),
            "SRR": ent["srr"],
            "SRRDM": ent["srrdm"],
            **{
                k: _fmt_dates(g[k].to_numpy(), "iso")
                for k in ("HTKGSJ", "HTJGSJ", "SJKGSJ", "SJJGSJ", "TGRQ")
            },
            "RJLXX": g.RJLXX,
            "RJLSX": g.RJLSX,
            "YDTZ": g.YDTZ,
            "SJTZ": g.SJTZ,
            "YKFMJ": g.YKFMJ,
        }
    )
    gd_gdf = gpd.GeoDataFrame(gd_out, geometry=land.gd_poly, crs=crs).sort_values("DZJGH")
    _write_shp(gd_gdf, out / "GD.shp", stamp)
    counts["GD"] = len(gd_gdf)

    k = land.dk
    dk_out = pd.DataFrame(
        {
            "DKBH": k.DKBH,
            "DLBM": k.DLBM,
            "SJYT": k.SJYT,
            "JZMJ": k.JZMJ,
            "JZJDMJ": k.JZJDMJ,
            "DZJGH": k.DZJGH,
            "QLR": ent["qlr"],
            "QLRDM": ent["qlrdm"],
            "XZQDM": k.XZQDM,
        }
    )
    dk_gdf = gpd.GeoDataFrame(dk_out, geometry=land.dk_poly, crs=crs).sort_values("DKBH")
    _write_shp(dk_gdf, out / "DK.shp", stamp)
    counts["DK"] = len(dk_gdf)

    qy = (
        pd.DataFrame(
            {
                "TYSHXYDM": ent["code"],
                "QYMC": ent["name"],
                "HYDM": _IND_CODE[ent["ind"]],
                "GMYS": ent["gmys"],
                "DKBH": ent["dkbh"],
                "X": ent["x"],
                "Y": ent["y"],
                "ZBXT": ent["zbxt"],
            }
        )
        .sort_values("TYSHXYDM")
        .reset_index(drop=True)
    )
    _write_xlsx(qy, out / "QY.xlsx", reference_date)
    counts["QY"] = len(qy)

    cc_out = cc.drop(columns="_e").sort_values(["TYSHXYDM", "ND"])
    cc_out.to_csv(out / "CC.csv", index=False, encoding="gbk", lineterminator="\n")
    counts["CC"] = len(cc_out)
    xm.to_csv(out / "XM.csv", index=False, encoding="utf-8-sig", lineterminator="\n")
    counts["XM"] = len(xm)
    bd.to_csv(out / "BD.csv", index=False, encoding="utf-8", lineterminator="\n")
    counts["BD"] = len(bd)
    tj.to_csv(out / "TJ.csv", index=False, encoding="utf-8", lineterminator="\n")
    counts["TJ"] = len(tj)
    mb = _build_targets(geo, land, ent, cc, tj, seed)
    mb.to_csv(out / "MB.csv", index=False, encoding="utf-8", lineterminator="\n")
    counts["MB"] = len(mb)
    tasks = PLAN_TASKS.read_bytes()
    (out / "RW.csv").write_bytes(tasks)
    counts["RW"] = tasks.decode("utf-8").count("\n") - 1  # the header

    (out / "manifest.toml").write_text(_MANIFEST, encoding="utf-8")
    (out / "planted.json").write_text(
        json.dumps(planted, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )

    written = ["XZQ", "PT", "ZL", "PZ", "GD", "DK"]
    files = sorted(
        [
            f"{n}{ext}"
            for n in written
            for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg")
            if (out / f"{n}{ext}").exists()
        ]
        + ["QY.xlsx", "CC.csv", "XM.csv", "BD.csv", "TJ.csv", "MB.csv", "RW.csv"]
        + ["manifest.toml", "planted.json"]
    )
    return {**counts, "files": files}

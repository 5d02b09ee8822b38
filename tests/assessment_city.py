"""A small city of four platforms for the assessment and publication tests, imported as a bureau
sends it (shapefiles and CSV, tests/eval_city.py): every parcel 100 m × 100 m = 15 亩.

P1 国家级 (a host) in 建德市 330182; P2 and P3 省级 in 上城区 330102 (main urban: 转为创新型);
P4 省级 in 330182, small, no featured industries (逐步退出型). P2 holds three enterprises, the
others one each; 330102 holds four enterprises, 330182 two.
"""

from __future__ import annotations

from pathlib import Path

from tests.eval_city import districts, enterprises, load, outputs, parcels, rect, uscc
from tests.factories import write_shp

YEAR = 2024
# enterprise: (platform, parcel x, HYDM, GYZCZ, SJSJ, GYZJZ, ZHNH) in 万元 and tce
ENTERPRISES = {
    "E1": ("P1", 6100, "2720", 3000.0, 300.0, 600.0, 150.0),
    "E2": ("P2", -2950, "3484", 1500.0, 75.0, 300.0, 300.0),
    "E5": ("P2", -2750, "3484", 900.0, 45.0, 200.0, 100.0),
    "E6": ("P2", -2550, "2720", 600.0, 30.0, 100.0, 50.0),
    "E3": ("P3", -900, "3984", 600.0, 30.0, 100.0, 200.0),
    "E4": ("P4", 12100, "1713", 1500.0, 150.0, 300.0, 100.0),
}
USCC = {e: uscc(60 + i) for i, e in enumerate(ENTERPRISES)}
MU = 15.0  # each enterprise's parcel


def platform_figures() -> dict[str, dict[str, float]]:
    """Each platform's §7 figures worked from ENTERPRISES by hand: sums over its enterprises,
    per 亩 over 15 亩 each; high-tech = GB/T 4754 27 or 39; featured: P1 and P3 生物医药 (27), P2
    智能制造 (34, 35, 40), P4 none."""
    featured = {"P1": ("27",), "P2": ("34", "35", "40"), "P3": ("27",), "P4": ()}
    out: dict[str, dict[str, float]] = {}
    for p in ("P1", "P2", "P3", "P4"):
        es = [v for v in ENTERPRISES.values() if v[0] == p]
        land = MU * len(es)
        gross = sum(e[3] for e in es)
        out[p] = {
            "output_per_mu": gross / land,
            "tax_per_mu": sum(e[4] for e in es) / land,
            "energy_per_va": sum(e[6] for e in es) / sum(e[5] for e in es),
            "high_tech_output_share": 100
            * sum(e[3] for e in es if e[2][:2] in ("27", "39"))
            / gross,
            "featured_output_share": 100 * sum(e[3] for e in es if e[2][:2] in featured[p]) / gross,
            "n": len(es),
        }
    return out


def build(db, tmp: Path) -> None:
    pt = write_shp(
        tmp / "PT.shp",
        [
            {"PTDM": "P1", "PTMC": "甲国家级开发区", "PTJB": "国家级", "PTLX": "经济技术开发区",
             "XZQDM": "330182", "TSCY": "生物医药"},
            {"PTDM": "P2", "PTMC": "乙园区", "PTJB": "省级", "PTLX": "工业园区",
             "XZQDM": "330102", "TSCY": "智能制造"},
            {"PTDM": "P3", "PTMC": "丙园区", "PTJB": "省级", "PTLX": "工业园区",
             "XZQDM": "330102", "TSCY": "生物医药"},
            {"PTDM": "P4", "PTMC": "丁园区", "PTJB": "省级", "PTLX": "工业园区",
             "XZQDM": "330182", "TSCY": ""},
        ],
        [rect(6000, 0, 300, 300), rect(-3000, 0, 600, 300), rect(-1000, 0, 300, 300),
         rect(12000, 0, 300, 300)],
    )  # fmt: skip
    dk = parcels(
        tmp,
        [
            (f"DK{e}", rect(x, 100, 100, 100), {"XZQDM": "330182" if x > 5000 else "330102"})
            for e, (_, x, *_) in ENTERPRISES.items()
        ],
    )
    qy = enterprises(
        tmp,
        [
            {"TYSHXYDM": USCC[e], "QYMC": f"{e}公司", "HYDM": v[2], "GMYS": 1, "DKBH": f"DK{e}"}
            for e, v in ENTERPRISES.items()
        ],
    )
    cc = outputs(
        tmp,
        [
            {"TYSHXYDM": USCC[e], "ND": YEAR, "GYZCZ": v[3], "YYSR": v[3], "SJSJ": v[4],
             "GYZJZ": v[5], "ZHNH": v[6], "PFDL": 5, "CYRS": 10, "YFFY": 10}
            for e, v in ENTERPRISES.items()
        ],
    )  # fmt: skip
    load(db, tmp, xzq=districts(tmp), pt=pt, dk=dk, qy=qy, cc=cc)

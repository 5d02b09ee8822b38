"""The survey's 家底 (the plan's first task: 摸清工业用地家底): per district or platform, the
industrial land by actual use and by place on the chain of land, and the three lists the survey
must reconcile. A reader: it writes nothing and keeps no table (every figure is read from the
source tables and the derived tables of the other rules, on each call).

What is counted (docs/SURVEY.md says why):

- The survey's parcels: the surveyed parcels (DK) whose land-use code (DLBM) is industrial
  (``gis.core.layers.INDUSTRIAL_LAND_CODES``), as §7's 工业用地面积 counts them; the others are
  counted apart (``excluded``).
- Areas: each parcel's area from its stored geometry (EPSG:4549, m², ``parcels.area_m2``), in 亩
  (m² ÷ ``gis.core.layers.M2_PER_MU``) and 公顷 (m² ÷ 10,000).
- A zone's share of a parcel: the §1 linkage's ``parcel_district`` / ``parcel_platform`` rows
  of ``links`` (gis/economy/linkage.py): a parcel split by a boundary adds its area share to each
  zone, as §7 and the per-mu figures do; a count (宗数, list counts) goes to the zone holding its
  largest share (``is_primary``). Land outside every zone of the level is the ``outside`` row, so
  the zone rows and it add up to the ``city`` row, which is the whole.
- By actual use: SJYT 工业 / 创新型产业 / 挪作他用 / 闲置 (the vocabulary ``actual_use``), and
  ``未填`` for a parcel without SJYT.
- By place on the chain: ``gis.lands.chain.position`` (批而未供 → … → 投而未达标, or 达标), the one
  placement the parcel dossier shows too, judged on the live detection run and kept per parcel
  by the graph (``chain_positions``).
- Lists: enterprises (QY) the linkage matched to no parcel (``enterprise_parcel`` without a
  target, with the linkage's reason, and the year's land basis of the per-mu figures: rented
  land declared in YDMJ, or none); the survey's parcels no enterprise is linked to; the survey's
  parcels with enterprises linked whose holder code (QLRDM) is none of theirs, or is not filled.

Enterprise names and USCC, holders' names and codes are public in this system (the QY and DK
layers restrict none of them); no tax, energy or emission figure is read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from gis.core import vocabulary
from gis.core.layers import INDUSTRIAL_LAND_CODES, M2_PER_MU
from gis.lands import chain
from gis.lands.detection import CURRENT_RUN, FLAGGED_SQL
from gis.serving.export import Field, Sheet, tables_xlsx

LEVELS = {"district": "districts", "platform": "platforms"}
LEVEL_LABELS = {"district": "行政区", "platform": "工业平台"}
OUTSIDE_NAMES = {"district": "不在任何行政区", "platform": "不在任何平台(平台外)"}
CITY_NAME = "全市"
M2_PER_HA = 10_000.0
UNFILLED = "未填"
USES = (*vocabulary.labels("actual_use"), UNFILLED)
POSITIONS = chain.POSITIONS
LIST_NAMES = ("unlinked-enterprises", "parcels-without-enterprise", "holder-mismatch")
LIST_TITLES = {
    "unlinked-enterprises": "未关联地块的企业",
    "parcels-without-enterprise": "无企业的地块",
    "holder-mismatch": "权利人与使用企业不一致的地块",
}
HOLDER_REASONS = {"other_holder": "权利人非使用企业", "no_holder": "未填权利人代码"}
LINK_HOW = vocabulary.labels("link_how")


class SurveyError(ValueError):
    """A request a person can fix (unknown level, list or year)."""


def position_label(code: str) -> str:
    return vocabulary.label("chain_stage", None if code == chain.CLEARED else code) or code


def use_label(code: str) -> str:
    return code  # SJYT values are their own labels; 未填 for none


# --------------------------------------------------------------------------------------------
# SQL (every statement the survey runs)
# --------------------------------------------------------------------------------------------

# the parcels an enterprise is linked to (§1 enterprise_parcel)
_HAS_USERS = (
    "SELECT e.to_key FROM links e WHERE e.kind = 'enterprise_parcel' AND e.to_key IS NOT NULL"
)
# the survey's parcels ({only}: all of them, or those of one list, ``_ONLY``); the linkage
# gives each parcel one ``supply_parcel`` row (its supply record, or none with the reason), so
# the supply links are joined whole (a hash join; probed once per parcel, the statement with
# its rows fetched took 4.6-5.1 s at 581,560 parcels, joined 3.6 s)
_PARCELS = f"""
    SELECT p.parcel_no, p.area_m2, coalesce(p.actual_use, :unfilled) AS actual_use,
           p.holder_name, p.holder_uscc, s.from_key AS supply_no,
           c.position, p.parcel_no IN ({_HAS_USERS}) AS has_users
    FROM parcels p LEFT JOIN chain_positions c ON c.parcel_no = p.parcel_no
    LEFT JOIN links s ON s.kind = 'supply_parcel' AND s.to_key = p.parcel_no
    WHERE p.land_use_code = ANY(:codes) {{only}}
    ORDER BY p.parcel_no
"""
_EXCLUDED = """
    SELECT count(*) AS parcels, coalesce(sum(area_m2), 0) AS area_m2 FROM parcels p
    WHERE p.land_use_code IS NULL OR NOT p.land_use_code = ANY(:codes)
"""
# every zone of the level a survey parcel lies in, with the share of its area there (§1)
_SHARES = """
    SELECT l.from_key AS parcel_no, l.to_key AS code, l.share, l.is_primary
    FROM links l JOIN parcels p ON p.parcel_no = l.from_key
    WHERE l.kind = :kind AND l.to_key IS NOT NULL AND p.land_use_code = ANY(:codes) {only}
"""
# the parcels one list reads (``read(..., only=NAME)``), as a condition on ``p``
_ONLY = {
    None: "",
    "parcels-without-enterprise": f"AND p.parcel_no NOT IN ({_HAS_USERS})",
    "holder-mismatch": "AND p.parcel_no = ANY(CAST(:candidates AS text[]))",
    "unlinked-enterprises": "AND false",  # no parcel needed
}
_ZONES = "SELECT code, name FROM {table} ORDER BY code"
# the enterprises linked to each parcel (§1 enterprise_parcel) whose holder (QLRDM) is none of
# them: the holder-mismatch list's candidates (``read`` tells an unfilled holder from another).
# A parcel whose holder is one of its enterprises is left out before the enterprises of each
# parcel are gathered (a hashed NOT IN: 0.9 -> 0.2 s on the 98,048-parcel city).
_USERS = """
    SELECT l.to_key AS parcel_no, array_agg(e.uscc ORDER BY e.uscc, l.method) AS usccs,
           array_agg(e.name ORDER BY e.uscc, l.method) AS names,
           array_agg(l.method ORDER BY e.uscc, l.method) AS methods
    FROM links l JOIN enterprises e ON e.uscc = l.from_key
    WHERE l.kind = 'enterprise_parcel' AND l.to_key IS NOT NULL
      AND l.to_key NOT IN (
          SELECT h.to_key FROM links h
          JOIN parcels p ON p.parcel_no = h.to_key AND p.holder_uscc = h.from_key
          WHERE h.kind = 'enterprise_parcel')
    GROUP BY l.to_key
"""
# enterprises matched to no parcel, their zone of the level (from their point) and, for the
# year, the land basis of their per-mu figures (enterprise_land, gis/economy/per_mu.py)
_UNLINKED = """
    SELECT e.uscc, e.name, e.industry_code, l.reason, z.to_key AS code,
           el.basis AS land_basis, el.area_m2 AS declared_m2
    FROM links l JOIN enterprises e ON e.uscc = l.from_key
    LEFT JOIN links z ON z.kind = :ekind AND z.from_key = e.uscc AND z.is_primary
         AND z.to_key IS NOT NULL
    LEFT JOIN enterprise_land el ON el.uscc = e.uscc AND el.year = :year
    WHERE l.kind = 'enterprise_parcel' AND l.to_key IS NULL
    ORDER BY e.uscc
"""
# 批而未供 as the three lands place it (gis/lands/detection.py): the unsupplied remainder of the
# flagged approvals of the run, per zone (detection_summaries: area shares) and in all (亩)
_REMAINDER_ZONES = """
    SELECT code, area_mu FROM detection_summaries
    WHERE run_id = :run AND level = :level AND kind = 'unsupplied'
"""
_REMAINDER_CITY = f"""
    SELECT coalesce(sum(unsupplied_mu), 0) FROM unsupplied_results
    WHERE run_id = :run AND {FLAGGED_SQL["unsupplied"]}
"""
_REGISTERED = "SELECT uscc FROM enterprises WHERE uscc = ANY(CAST(:u AS text[]))"
# the distinct years of enterprise_land, one probe of its key (year, uscc) per year instead of a
# scan of every row (0.4-0.7 s at 2.2 million rows)
_YEARS = """
    WITH RECURSIVE y AS (
        SELECT min(year) AS year FROM enterprise_land
        UNION ALL
        SELECT (SELECT min(x.year) FROM enterprise_land x WHERE x.year > y.year) FROM y
        WHERE y.year IS NOT NULL
    )
    SELECT year FROM y WHERE year IS NOT NULL ORDER BY year
"""
_RUN = f"SELECT id, as_of FROM detection_runs WHERE id = {CURRENT_RUN}"


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass
class Frames:
    """What the survey reads, as DataFrames (areas m²)."""

    level: str
    year: int | None
    zones: pd.DataFrame  # code, name
    parcels: pd.DataFrame  # parcel_no, area_m2, actual_use, holder_*, supply_no, position, code
    shares: pd.DataFrame  # parcel_no, code, share
    lists: dict[str, pd.DataFrame]  # each with ``code`` (primary zone; None outside)
    excluded: dict
    run: dict | None
    remainder_mu: dict[str, float]  # 批而未供 remainder: zone code, ``outside``, ``city`` -> 亩
    only: str | None = None  # read for this list alone (``read(..., only=...)``): no summary


def _df(conn: Connection, sql: str, **params: Any) -> pd.DataFrame:
    result = conn.execute(text(sql), params)
    # plain tuples: pandas probes each SQLAlchemy Row for attributes (about 2 s of the scale-20
    # survey under cProfile)
    return pd.DataFrame(list(map(tuple, result.fetchall())), columns=list(result.keys()))


def years(conn: Connection) -> list[int]:
    """The years with per-mu land figures (the output (CC) years the graph has computed)."""
    return [r[0] for r in conn.execute(text(_YEARS))]


def _year(conn: Connection, year: int | None) -> int | None:
    ys = years(conn)
    if year is None:
        return ys[-1] if ys else None
    if year not in ys:
        raise SurveyError(
            f"no enterprise output (CC) for year {year}; years: "
            + (", ".join(map(str, ys)) or "none (import CC and run the analyses)")
        )
    return year


def read(conn: Connection, level: str, year: int | None = None, only: str | None = None) -> Frames:
    """Everything the summary and the lists need for ``level`` and ``year`` (default: the
    latest output year), in one read-only pass. ``only`` (one of ``LIST_NAMES``): read just what
    that list needs; the other lists are then empty and the Frames are not for :func:`summary`
    (``Frames.only`` says so)."""
    if level not in LEVELS:
        raise SurveyError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    if only is not None and only not in LIST_NAMES:
        raise SurveyError(f"no list {only!r}; lists: {', '.join(LIST_NAMES)}")
    year = _year(conn, year)
    codes = list(INDUSTRIAL_LAND_CODES)
    zones = _df(conn, _ZONES.format(table=LEVELS[level]))
    users = _df(conn, _USERS) if only in (None, "holder-mismatch") else None
    cond = _ONLY[only]
    params = {"candidates": list(users["parcel_no"])} if only == "holder-mismatch" else {}
    parcels = _df(conn, _PARCELS.format(only=cond), codes=codes, unfilled=UNFILLED, **params)
    shares = _df(conn, _SHARES.format(only=cond), kind=f"parcel_{level}", codes=codes, **params)
    # each parcel's place as the graph keeps it (``chain_positions``); a parcel the graph has
    # not placed (a database not yet analysed) is placed from its facts here
    unplaced = parcels["position"].isna()
    if unplaced.any():
        places = chain.facts(conn, list(parcels.loc[unplaced, "parcel_no"]))
        parcels.loc[unplaced, "position"] = [
            chain.position(places[no]) for no in parcels.loc[unplaced, "parcel_no"]
        ]
    primary = shares[shares["is_primary"].astype(bool)].set_index("parcel_no")["code"]
    parcels["code"] = parcels["parcel_no"].map(primary)
    if only in (None, "unlinked-enterprises"):
        unlinked = _df(conn, _UNLINKED, ekind=f"enterprise_{level}", year=year)
    else:
        unlinked = pd.DataFrame(columns=["uscc", "land_basis", "declared_m2", "code"])
    excluded = {"parcels": 0, "area_m2": 0.0}
    run = None
    remainder: dict[str, float] = {}
    if only is None:
        excluded = dict(conn.execute(text(_EXCLUDED), {"codes": codes}).mappings().one())
        run = conn.execute(text(_RUN)).mappings().first()
    if run:
        remainder = {
            r.code: float(r.area_mu)
            for r in conn.execute(text(_REMAINDER_ZONES), {"run": run["id"], "level": level})
        }
        city = float(conn.execute(text(_REMAINDER_CITY), {"run": run["id"]}).scalar_one())
        remainder["outside"] = max(city - sum(remainder.values()), 0.0)
        remainder["city"] = city

    # enterprises not linked to any parcel
    unlinked["declared_mu"] = np.where(
        unlinked["land_basis"] == "declared", unlinked["declared_m2"] / M2_PER_MU, np.nan
    )
    unlinked = unlinked.drop(columns=["declared_m2"])

    # survey parcels no enterprise is linked to
    without = parcels[~parcels["has_users"].astype(bool)].drop(columns=["has_users"])
    parcels = parcels.drop(columns=["has_users"])

    # survey parcels whose holder (QLRDM) is none of the enterprises linked to them
    if users is None:
        users = pd.DataFrame(columns=["parcel_no", "usccs", "names", "methods"])
    by_parcel = users.set_index("parcel_no")
    withusers = parcels.join(by_parcel, on="parcel_no", how="inner")
    holder = withusers["holder_uscc"]
    no_holder = holder.isna() | (holder.fillna("").str.strip() == "")
    other = ~no_holder & ~np.array(
        [h in u for h, u in zip(holder.fillna(""), withusers["usccs"], strict=True)], dtype=bool
    )
    mismatch = withusers[no_holder | other].copy()
    mismatch["reason"] = np.where(no_holder[no_holder | other], "no_holder", "other_holder")
    registered = {
        r[0]
        for r in conn.execute(
            text(_REGISTERED), {"u": sorted(set(mismatch["holder_uscc"].dropna()))}
        )
    }
    mismatch["holder_registered"] = mismatch["holder_uscc"].isin(registered)

    return Frames(
        level=level,
        year=year,
        zones=zones,
        parcels=parcels,
        shares=shares[["parcel_no", "code", "share"]],
        lists={
            "unlinked-enterprises": unlinked,
            "parcels-without-enterprise": without,
            "holder-mismatch": mismatch,
        },
        excluded={"parcels": int(excluded["parcels"]), "area_m2": float(excluded["area_m2"])},
        run={"id": run["id"], "as_of": run["as_of"].isoformat()} if run else None,
        remainder_mu=remainder,
        only=only,
    )


# --------------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------------


def _by(fr: Frames, column: str, keys: tuple[str, ...]) -> pd.DataFrame:
    """m² per (zone code | ``outside`` | ``city``) and value of ``column``: zones by area
    share, ``outside`` the part of each parcel in no zone of the level, ``city`` the whole."""
    p = fr.parcels[["parcel_no", "area_m2", column]]
    inside = fr.shares.merge(p, on="parcel_no")
    inside["m2"] = inside["area_m2"] * inside["share"]
    zone = inside.pivot_table(index="code", columns=column, values="m2", aggfunc="sum")
    in_share = fr.shares.groupby("parcel_no")["share"].sum()
    out = p.assign(m2=p["area_m2"] * (1 - p["parcel_no"].map(in_share).fillna(0)).clip(lower=0))
    outside = out.groupby(column)["m2"].sum().rename("outside").to_frame().T
    city = p.groupby(column)["area_m2"].sum().rename("city").to_frame().T
    return pd.concat([zone, outside, city]).reindex(columns=list(keys)).fillna(0.0)


def _counts(df: pd.DataFrame) -> pd.Series:
    """Items per primary zone code (``outside`` for none), and ``city``."""
    c = df["code"].fillna("outside").value_counts()
    c["city"] = len(df)
    return c


def _area(m2: float) -> dict:
    return {"mu": round(m2 / M2_PER_MU, 4), "ha": round(m2 / M2_PER_HA, 4)}


def summary(fr: Frames, list_href: dict[str, str] | None = None) -> dict:
    """Rows (every zone of the level, ``outside``, ``city``) with the industrial land area by
    actual use and by place on the chain (亩 and 公顷), the survey parcels (宗, by largest
    share) and the three lists' counts (by largest share, an enterprise by its point)."""
    if fr.only is not None:
        raise ValueError(f"these frames were read for the list {fr.only} alone: no summary")
    uses = _by(fr, "actual_use", USES)
    stages = _by(fr, "position", POSITIONS)
    parcels = _counts(fr.parcels)
    counts = {name: _counts(df) for name, df in fr.lists.items()}
    keys = [(z.code, z.name, "zone") for z in fr.zones.itertuples()]
    keys += [("outside", OUTSIDE_NAMES[fr.level], "outside"), ("city", CITY_NAME, "city")]
    rows = []
    for key, name, kind in keys:
        u = uses.loc[key] if key in uses.index else pd.Series(0.0, index=list(USES))
        s = stages.loc[key] if key in stages.index else pd.Series(0.0, index=list(POSITIONS))
        rows.append(
            {
                "code": None if kind != "zone" else key,
                "name": name,
                "row": kind,
                "parcels": int(parcels.get(key, 0)),
                "total": _area(float(u.sum())),
                "by_use": {c: _area(float(u[c])) for c in USES},
                "by_chain": {c: _area(float(s[c])) for c in POSITIONS},
                "lists": {n: int(c.get(key, 0)) for n, c in counts.items()},
                "unsupplied_remainder": _area(fr.remainder_mu.get(key, 0.0) * M2_PER_MU),
            }
        )
    return {
        "level": fr.level,
        "level_label": LEVEL_LABELS[fr.level],
        "year": fr.year,
        "run": fr.run,
        "units": {"mu": "亩", "ha": "公顷"},
        "uses": [{"code": c, "label": use_label(c)} for c in USES],
        "chain": [{"code": c, "label": position_label(c)} for c in POSITIONS],
        "rows": rows,
        "notes": {
            "unsupplied_remainder": "批而未供: 批文未供部分 (三块地认定, 尚未供地, 不是现状地块), "
            "列在链条表旁, 不计入现状工业用地合计",
        },
        "lists": {
            n: {
                "title": LIST_TITLES[n],
                "count": len(fr.lists[n]),
                **({"href": list_href[n]} if list_href else {}),
            }
            for n in LIST_NAMES
        },
        "excluded": {
            "parcels": fr.excluded["parcels"],
            **_area(fr.excluded["area_m2"]),
            "note": "DLBM 非工业用地的现状地块, 不计入家底 (as §7 工业用地面积)",
        },
    }


# --------------------------------------------------------------------------------------------
# The lists
# --------------------------------------------------------------------------------------------


def _zone_fields(level: str) -> list[Field]:
    return [
        Field("zone_code", "ZONE_DM", f"{LEVEL_LABELS[level]}代码"),
        Field("zone_name", "ZONE_MC", LEVEL_LABELS[level]),
    ]


def list_fields(name: str, level: str) -> list[Field]:
    """The columns of a list (API name, Chinese header with its unit)."""
    area = [
        Field("area_mu", "MJ_MU", "面积(亩)", "float"),
        Field("area_ha", "MJ_HA", "面积(公顷)", "float"),
    ]
    if name == "unlinked-enterprises":
        return [
            Field("uscc", "TYSHXYDM", "统一社会信用代码"),
            Field("name", "QYMC", "企业名称"),
            Field("industry_code", "HYDM", "行业代码"),
            Field("reason", "YY", "未关联原因"),
            Field("land_basis", "YD_JC", "用地依据"),
            Field("declared_mu", "YDMJ_MU", "申报用地(亩)", "float"),
            *_zone_fields(level),
        ]
    if name == "parcels-without-enterprise":
        return [
            Field("parcel_no", "DKBH", "地块编号"),
            *area,
            Field("actual_use", "SJYT", "实际用途"),
            Field("chain_label", "LT", "用地链条"),
            Field("supply_no", "DZJGH", "电子监管号"),
            Field("holder_name", "QLR", "权利人"),
            Field("holder_uscc", "QLRDM", "权利人代码"),
            *_zone_fields(level),
        ]
    if name == "holder-mismatch":
        return [
            Field("parcel_no", "DKBH", "地块编号"),
            *area,
            Field("holder_name", "QLR", "权利人"),
            Field("holder_uscc", "QLRDM", "权利人代码"),
            Field("holder_registered", "QLR_ZC", "权利人在企业名录", "bool"),
            Field("reason_label", "YY", "不一致情形"),
            Field("users", "SYQY", "使用企业(关联方式)", "list"),
            *_zone_fields(level),
        ]
    raise SurveyError(f"no list {name!r}; lists: {', '.join(LIST_NAMES)}")


def _records(fr: Frames, name: str) -> list[dict]:
    df = fr.lists[name]
    zone_names = dict(zip(fr.zones["code"], fr.zones["name"], strict=True))
    out = []
    for r in df.to_dict("records"):
        r = {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in r.items()}
        code = r.get("code")
        item: dict[str, Any] = {}
        if name == "unlinked-enterprises":
            dm = r["declared_mu"]
            item = {
                "uscc": r["uscc"],
                "name": r["name"],
                "industry_code": r["industry_code"],
                "reason": r["reason"],
                "land_basis": r["land_basis"],
                "declared_mu": None if dm is None else round(float(dm), 4),
            }
        else:
            item = {"parcel_no": r["parcel_no"], **_area(float(r["area_m2"]))}
            item["area_mu"], item["area_ha"] = item.pop("mu"), item.pop("ha")
            if name == "parcels-without-enterprise":
                item.update(
                    actual_use=r["actual_use"],
                    chain_position=r["position"],
                    chain_label=position_label(r["position"]),
                    supply_no=r["supply_no"],
                    holder_name=r["holder_name"],
                    holder_uscc=r["holder_uscc"],
                )
            else:
                item.update(
                    holder_name=r["holder_name"],
                    holder_uscc=r["holder_uscc"],
                    holder_registered=bool(r["holder_registered"]),
                    reason=r["reason"],
                    reason_label=HOLDER_REASONS[r["reason"]],
                    user_usccs=list(r["usccs"]),
                    users=[
                        f"{n}({u}, {LINK_HOW.get(m, m)})"
                        for u, n, m in zip(r["usccs"], r["names"], r["methods"], strict=True)
                    ],
                )
        item["zone_code"] = code
        item["zone_name"] = zone_names.get(code) if code else OUTSIDE_NAMES[fr.level]
        out.append(item)
    return out


def list_items(
    fr: Frames, name: str, code: str | None = None, limit: int | None = None, offset: int = 0
) -> dict:
    """One list (``LIST_NAMES``), every zone or the items whose largest share (an enterprise:
    its point) lies in zone ``code`` (``outside``: in none), paged: {items, number_matched}."""
    if name not in LIST_NAMES:
        raise SurveyError(f"no list {name!r}; lists: {', '.join(LIST_NAMES)}")
    items = _records(fr, name)
    if code == "outside":
        items = [i for i in items if i["zone_code"] is None]
    elif code:
        if code not in set(fr.zones["code"]):
            raise SurveyError(f"no {fr.level} with code {code!r}")
        items = [i for i in items if i["zone_code"] == code]
    total = len(items)
    end = None if limit is None else offset + limit
    return {"items": items[offset:end], "number_matched": total}


# --------------------------------------------------------------------------------------------
# Entry points and the workbook
# --------------------------------------------------------------------------------------------


def survey(engine: Engine, level: str, year: int | None = None, only: str | None = None) -> Frames:
    """Read the survey of ``level`` (see :func:`read`; ``only``: one list's part) in one
    transaction (one snapshot)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return read(conn, level, year, only)


REMAINDER_FIELDS = [
    Field("unsupplied_remainder|mu", "PWG_MU", "批而未供·批文未供部分(亩)", "float"),
    Field("unsupplied_remainder|ha", "PWG_HA", "批而未供·批文未供部分(公顷)", "float"),
]


def _table_fields(level: str, keys: tuple[str, ...], label) -> list[Field]:
    fields = [
        Field("code", "DM", f"{LEVEL_LABELS[level]}代码"),
        Field("name", "MC", "名称"),
        Field("parcels", "ZS", "地块(宗)", "int"),
    ]
    for i, k in enumerate(keys):
        fields += [
            Field(f"{k}|mu", f"C{i}_MU", f"{label(k)}(亩)", "float"),
            Field(f"{k}|ha", f"C{i}_HA", f"{label(k)}(公顷)", "float"),
        ]
    fields += [
        Field("total|mu", "HJ_MU", "小计(亩)", "float"),
        Field("total|ha", "HJ_HA", "小计(公顷)", "float"),
    ]
    return fields


def _table_rows(body: dict, part: str) -> list[dict]:
    rows = []
    for r in body["rows"]:
        if r["row"] == "city":
            continue  # the 合计 row: the sum of the zones and the outside row
        row = {"code": r["code"], "name": r["name"], "parcels": r["parcels"]}
        for k, a in r[part].items():
            row[f"{k}|mu"], row[f"{k}|ha"] = a["mu"], a["ha"]
        row["total|mu"], row["total|ha"] = r["total"]["mu"], r["total"]["ha"]
        if part == "by_chain":
            a = r["unsupplied_remainder"]
            row["unsupplied_remainder|mu"], row["unsupplied_remainder|ha"] = a["mu"], a["ha"]
        rows.append(row)
    return rows


def workbook(fr: Frames, made_on: date | None = None) -> bytes:
    """The survey as an XLSX workbook (gis.serving.export.tables_xlsx): by use, by chain, then
    the three lists in full; each sheet with Chinese headers carrying units, frozen below the
    header, a 合计 row and the 制表日期."""
    body = summary(fr)
    made_on = made_on or date.today()
    run = f"; 用地链条据 {fr.run['as_of']} 三块地认定 (第 {fr.run['id']} 次)" if fr.run else ""
    note = f"面积按地块在{LEVEL_LABELS[fr.level]}内的面积份额计 (EPSG:4549){run}"
    sums_of = lambda fields: tuple(f.name for f in fields if f.kind in ("int", "float"))  # noqa: E731
    use_fields = _table_fields(fr.level, USES, use_label)
    chain_fields = _table_fields(fr.level, POSITIONS, position_label) + REMAINDER_FIELDS
    sheets = [
        Sheet("按实际用途", use_fields, _table_rows(body, "by_use"), sums_of(use_fields), note),
        Sheet(
            "按用地链条", chain_fields, _table_rows(body, "by_chain"), sums_of(chain_fields), note
        ),
    ]
    for name in LIST_NAMES:
        fields = list_fields(name, fr.level)
        sheets.append(
            Sheet(
                LIST_TITLES[name],
                fields,
                list_items(fr, name)["items"],
                tuple(f.name for f in fields if f.kind == "float"),
            )
        )
    return tables_xlsx(sheets, f"工业用地家底调查 · 按{LEVEL_LABELS[fr.level]}", made_on)


def list_workbook(
    fr: Frames, name: str, code: str | None = None, made_on: date | None = None
) -> bytes:
    """One list in full as an XLSX workbook (the same writer)."""
    fields = list_fields(name, fr.level)
    items = list_items(fr, name, code)["items"]
    sheet = Sheet(
        LIST_TITLES[name], fields, items, tuple(f.name for f in fields if f.kind == "float")
    )
    return tables_xlsx([sheet], f"工业用地家底调查 · {LIST_TITLES[name]}", made_on or date.today())

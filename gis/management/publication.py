"""The yearly publication (每年公布各类数据, 大比武): a year's figures frozen as numbered editions.

``publish`` reads, through the modules that compute them, the year's §7 indicators per district,
platform and corridor with their ranks (gis/economy/evaluation_read.py ``area_indicators``), the
platforms' assessment and ranking (gis/management/assessment.py), the A/B/C/D evaluation (counts
per district and platform and the list of enterprises by class: ``evaluation_read.evaluations``),
the three kinds of land per district and platform (gis/lands/land_summary.py ``summary``, the
current detection run) and, when the targets' progress exists, the platforms' target completion
(``assessment.target_completion_rows``). It writes them as one edition in two audiences:

- ``analyst``: everything;
- ``public`` (``public_edition``): no restricted figure (enterprise tax, energy, emissions and
  what is derived from them: 亩均税收, 单位工业增加值能耗, 排放总量, an enterprise's score), and
  every zone figure built from fewer than ``disclosure_min_enterprises`` (3) enterprises
  suppressed (None in JSON, "—" in the report) with a note (统计法; docs/PUBLICATIONS.md).

Every section is a list of tables ``{id, title, key, columns, rows, notes}``; a column says its
unit, whether it is ``restricted`` and whether it is built from enterprises' figures
(``basis: "enterprises"``, the ones the threshold applies to), and a table names the column that
counts those enterprises (``n_column``). Publishing the same year again makes edition N + 1, with
the difference from edition N per audience (``diff``: sections added or removed, rows added or
removed, figures changed old → new). Editions are append-only (a trigger refuses UPDATE and
DELETE): later corrections of the data do not change them. Money 万元, areas 亩.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, text

from gis.core import vocabulary
from gis.core.rules import Rules, get_rules, rules_hash
from gis.economy import evaluation_read as er
from gis.economy import per_mu
from gis.economy.indicators import INDICATORS
from gis.lands import land_summary
from gis.lands.detection import RunNotFound
from gis.management import assessment

SCHEMA = 1
SECTION_LABELS = vocabulary.labels("publication_section")
INDICATOR_LABELS = vocabulary.labels("indicator")
LEVEL_LABELS = {"district": "区县", "platform": "工业平台", "corridor": "走廊"}
# zone figures not built from enterprises' figures: TJ (统计年鉴) and the land survey
NOT_FROM_ENTERPRISES = {"va_gdp_share", "industrial_land_mu"}
RESTRICTED_INDICATORS = {k for k, v in INDICATORS.items() if v[3]}
SUPPRESSED = "—"
DISCLOSURE_SOURCE = (
    "《中华人民共和国统计法》第九条、第三十九条;《统计调查中的个人信息和单个调查对象资料保密》"
)


class PublicationError(ValueError):
    """A publication that cannot be made or found (the message says why)."""


# ---- content -----------------------------------------------------------------------------------


def _col(name: str, label: str, unit: str | None = None, **kw: Any) -> dict:
    c = {"name": name, "label": label}
    if unit:
        c["unit"] = unit
    c.update(kw)
    return c


def _table(tid: str, title: str, key: list[str], columns: list[dict], rows: list[dict], **kw):
    return {"id": tid, "title": title, "key": key, "columns": columns, "rows": rows,
            "notes": [], **kw}  # fmt: skip


def _indicator_tables(conn: Connection, year: int) -> list[dict]:
    """§7 indicators of every district, platform and corridor: value and rank per indicator,
    with the number of enterprises behind the zone's figures (per_mu ``n_enterprises``)."""
    tables = []
    for level, label in LEVEL_LABELS.items():
        res = er.area_indicators(conn, level, year, analyst=True)
        figures = per_mu.zone_figures(conn, level, year)
        cols = [
            _col("code", "代码"),
            _col("name", "名称"),
            _col("n_enterprises", "企业数", "家"),
        ]
        for ind, (_, unit, better, restricted) in INDICATORS.items():
            basis = None if ind in NOT_FROM_ENTERPRISES else "enterprises"
            cols.append(_col(ind, INDICATOR_LABELS[ind], unit, restricted=restricted,
                             basis=basis, better=better, indicator=ind))  # fmt: skip
            cols.append(_col(f"{ind}_rank", f"{INDICATOR_LABELS[ind]}排名", None,
                             restricted=restricted, basis=basis, indicator=ind))  # fmt: skip
        rows = []
        for z in res["items"]:
            row = {
                "code": z["code"],
                "name": z["name"],
                "n_enterprises": (figures.get(z["code"]) or {}).get("n_enterprises", 0),
            }
            for ind in INDICATORS:
                v = z["indicators"].get(ind) or {}
                row[ind] = v.get("value")
                row[f"{ind}_rank"] = v.get("rank")
            rows.append(row)
        tables.append(
            _table(
                f"indicators.{level}",
                f"{label}指标",
                ["code"],
                cols,
                rows,
                n_column="n_enterprises",
                level=level,
            )  # fmt: skip
        )
    return tables


def _assessment_tables(conn: Connection, year: int, targets) -> list[dict]:
    """The platforms' composite score and ranks, and each component's value, normalised score
    and points."""
    res = assessment.assess(conn, year, targets=targets)
    comp_rows = [
        {**{k: c[k] for k in ("component", "label", "weight", "better", "unit")},
         "present": True, "reason": None}
        for c in res["components"]
    ] + [
        {**{k: c[k] for k in ("component", "label", "weight", "better", "unit")},
         "present": False, "reason": c["reason"]}
        for c in res["absent"]
    ]  # fmt: skip
    components = _table(
        "assessment.components",
        "考核评价构成与权重",
        ["component"],
        [_col("component", "代码"), _col("label", "构成"), _col("weight", "权重"),
         _col("better", "方向"), _col("unit", "单位"), _col("present", "计入"),
         _col("reason", "说明")],
        comp_rows,
    )  # fmt: skip
    cols = [
        _col("code", "平台代码"),
        _col("name", "平台名称"),
        _col("kind_label", "平台类型"),
        _col("n_enterprises", "企业数", "家"),
        _col("score", "综合得分", "分"),
        _col("rank", "总排名"),
        _col("rank_in_kind", "类型内排名"),
        _col("kind_size", "同类平台数"),
    ]
    for c in res["components"]:
        basis = None if c["component"] == assessment.TARGETS else "enterprises"
        name = c["component"]
        cols += [
            _col(f"{name}_value", c["label"], c["unit"], restricted=c["restricted"], basis=basis,
                 indicator=name),
            _col(f"{name}_score", f"{c['label']}标准化得分", None, basis=basis, indicator=name),
            _col(f"{name}_points", f"{c['label']}得分", "分", basis=basis, indicator=name),
        ]  # fmt: skip
    rows = []
    for it in res["items"]:
        row = {k: it[k] for k in ("code", "name", "kind_label", "n_enterprises", "score", "rank",
                                  "rank_in_kind", "kind_size")}  # fmt: skip
        for x in it["components"]:
            row[f"{x['component']}_value"] = x["value"]
            row[f"{x['component']}_score"] = x["normalised"]
            row[f"{x['component']}_points"] = x["points"]
        rows.append(row)
    ranking = _table("assessment.platforms", "工业平台考核评价排名", ["code"], cols, rows,
                     n_column="n_enterprises")  # fmt: skip
    if res["absent"]:
        ranking["notes"].append(
            "未计入的构成: "
            + "; ".join(f"{a['label']}({a['reason']})" for a in res["absent"])
            + "; 权重按计入的构成重新归一"
        )
    return [components, ranking]


CLASSES = ("A", "B", "C", "D")


def _evaluation_tables(conn: Connection, year: int) -> list[dict]:
    """A/B/C/D: counts per district and platform, and the enterprises by class."""
    res = er.evaluations(conn, year, None, analyst=True)
    names = {
        lv: dict(conn.execute(text(f"SELECT code, name FROM {t} ORDER BY code")).all())
        for lv, t in (("district", "districts"), ("platform", "platforms"))
    }
    tables = []
    for lv in ("district", "platform"):
        counts: dict[str, dict] = {
            c: {"code": c, "name": n, **dict.fromkeys(CLASSES, 0), "not_graded": 0, "total": 0}
            for c, n in names[lv].items()
        }
        for it in res["items"]:
            z = counts.get(it[lv])
            if z is None:
                continue
            z["total"] += 1
            if it["class"] in CLASSES:
                z[it["class"]] += 1
            else:
                z["not_graded"] += 1
        cols = [_col("code", "代码"), _col("name", "名称")]
        cols += [_col(k, f"{vocabulary.label('eval_class', k)}", "家") for k in CLASSES]
        cols += [_col("not_graded", "未分类", "家"), _col("total", "参评企业", "家")]
        tables.append(
            _table(
                f"evaluation.{lv}",
                f"{LEVEL_LABELS[lv]}A/B/C/D类企业数",
                ["code"],
                cols,
                list(counts.values()),
            )  # fmt: skip
        )
    rows = [
        {
            "uscc": it["uscc"],
            "name": it["name"],
            "class": it["class"],
            "group": {"above": "规上", "below": "规下"}.get(it["group"], it["group"]),
            "rank": it["rank"],
            "group_size": it["group_size"],
            "score": it["score"],
            "district": it["district"],
            "platform": it["platform"],
        }
        for it in res["items"]
        if it["class"] in CLASSES
    ]
    rows.sort(key=lambda r: (r["class"], r["group"], r["rank"] or 0, r["uscc"]))
    cols = [
        _col("class", "类别"),
        _col("uscc", "统一社会信用代码"),
        _col("name", "企业名称"),
        _col("group", "规上/规下"),
        _col("rank", "组内排名"),
        _col("group_size", "组内企业数", "家"),
        _col("score", "综合得分", "分", restricted=True),
        _col("district", "行政区"),
        _col("platform", "工业平台"),
    ]
    tables.append(_table("evaluation.enterprises", "企业分类名单", ["uscc"], cols, rows))
    return tables


def _three_lands_tables(engine: Engine) -> tuple[list[dict], str | None]:
    """The three kinds of land per district and platform (the current detection run), with a
    city total; ([], note) without a run."""
    try:
        dist = land_summary.summary(engine, "district")
        plat = land_summary.summary(engine, "platform")
    except RunNotFound as e:
        return [], str(e)
    fields = [f for f in land_summary.SUMMARY_FIELDS if f.name != "level"]
    cols = [_col(f.name, f.label) for f in fields]
    run = dist["run"]
    note = f"检测批次 {run['id']}, 截至 {run['as_of']}"
    tables = []
    for lv, res in (("district", dist), ("platform", plat)):
        rows = [{f.name: it[f.name] for f in fields} for it in res["items"]]
        t = _table(f"three_lands.{lv}", f"{LEVEL_LABELS[lv]}三块地", ["code"], cols, rows)
        t["notes"].append(note)
        tables.append(t)
    total = {"code": "全市", "name": "全市合计"}
    for f in fields[2:]:
        total[f.name] = sum(r[f.name] or 0 for r in tables[0]["rows"])
    tables.append(_table("three_lands.total", "全市三块地合计", ["code"], cols, [total],
                         notes=[note]))  # fmt: skip
    return tables, None


def _target_tables(conn: Connection, year: int, rows) -> list[dict]:
    names = dict(conn.execute(text("SELECT code, name FROM platforms")).all())
    out = [
        {"code": code, "name": names.get(code), "completion": c}
        for code, y, c in sorted(rows)
        if y == year
    ]
    cols = [_col("code", "平台代码"), _col("name", "平台名称"),
            _col("completion", "目标平均完成率", "%")]  # fmt: skip
    return [_table("targets.platforms", "工业平台年度目标完成率", ["code"], cols, out)]


def build(engine: Engine, year: int, rules: Rules | None = None) -> dict:
    """The analyst content of ``year``'s publication (everything), read now."""
    rules = rules or get_rules()
    with engine.connect() as conn:
        if not conn.execute(
            text("SELECT EXISTS (SELECT FROM area_indicators WHERE year = :y)"), {"y": year}
        ).scalar_one():
            raise PublicationError(
                f"no §7 indicators for {year}: import the year's output (CC) and run "
                "'landlink analyse-all' before publishing it"
            )
        targets = assessment.target_completion_rows(conn, year)
        sections: dict[str, dict] = {
            "indicators": {"tables": _indicator_tables(conn, year)},
            "assessment": {"tables": _assessment_tables(conn, year, targets)},
            "evaluation": {"tables": _evaluation_tables(conn, year)},
        }
        if targets:
            sections["targets"] = {"tables": _target_tables(conn, year, targets)}
    land, land_note = _three_lands_tables(engine)
    sections["three_lands"] = {"tables": land}
    contents = []
    for code, title in SECTION_LABELS.items():
        s = sections.get(code)
        note = None
        if code == "three_lands" and land_note:
            note = land_note
        if code == "targets" and s is None:
            note = f"{year}年无工业平台年度目标(MB)的完成率: 本期不含此章"
        if s is not None:
            s["title"] = title
        contents.append({"section": code, "title": title, "present": s is not None and
                         bool(s["tables"]), "note": note})  # fmt: skip
    pub = rules.publication
    return _clean(
        {
            "schema": SCHEMA,
            "year": year,
            "audience": "analyst",
            "title": f"{year}年度杭州市工业平台(开发区、园区)亩均效益与优化提升情况",
            "publisher": pub.publisher,
            "basis": "杭政办函〔2017〕127号: 建立统计制度, 每年公布各类数据, 以大比武进行激励",
            "contents": contents,
            "sections": {k: v for k, v in sections.items() if v["tables"]},
            "disclosure": None,
        }
    )


def _clean(obj: Any) -> Any:
    """JSON-ready: floats rounded to 6 decimals (NaN/inf to None), dates as ISO text."""
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else round(obj, 6)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, date):
        return obj.isoformat()
    return obj


def public_edition(content: dict, min_enterprises: int) -> dict:
    """The public audience of ``content``: restricted columns removed from every table, and in
    every table with an ``n_column``, each figure built from enterprises (``basis``) of a row
    counting fewer than ``min_enterprises`` set to None and listed in the row's
    ``suppressed``, with a note."""
    out = copy.deepcopy(content)
    out["audience"] = "public"
    total = 0
    for section in out["sections"].values():
        for t in section["tables"]:
            dropped = {c["name"] for c in t["columns"] if c.get("restricted")}
            t["columns"] = [c for c in t["columns"] if c["name"] not in dropped]
            for r in t["rows"]:
                for name in dropped:
                    r.pop(name, None)
            if dropped:
                t["notes"].append("涉及企业税收、能耗、排放的数据不对外公布")
            ncol = t.get("n_column")
            if not ncol:
                continue
            basis = [c["name"] for c in t["columns"] if c.get("basis") == "enterprises"]
            hidden = 0
            for r in t["rows"]:
                if (r.get(ncol) or 0) < min_enterprises:
                    r["suppressed"] = [b for b in basis if r.get(b) is not None]
                    for b in basis:
                        r[b] = None
                    hidden += bool(r["suppressed"])
            if hidden:
                total += hidden
                t["notes"].append(
                    f"“{SUPPRESSED}”: 企业数少于 {min_enterprises} 家, 依统计资料保密规定不予公布 "
                    f"({hidden} 行)"
                )
    out["disclosure"] = {
        "min_enterprises": min_enterprises,
        "source": DISCLOSURE_SOURCE,
        "rows_suppressed": total,
        "restricted": "企业税收、能耗、排放及由其计算的指标"
        "(亩均税收、单位工业增加值能耗、排放总量)",
    }
    return out


# ---- storage -----------------------------------------------------------------------------------


def canonical(obj: Any) -> bytes:
    """The one serialisation of stored content: sorted keys, UTF-8, no spaces."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def content_hash(obj: Any) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def _geometry(conn: Connection) -> dict:
    """Simplified outlines of the districts and platforms (EPSG:4549 GeoJSON, metres)."""
    out = {}
    for lv, t in (("district", "districts"), ("platform", "platforms")):
        out[lv] = [
            {"code": r.code, "geom": json.loads(r.g)}
            for r in conn.execute(
                text(
                    f"SELECT code, ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, 10), 0) AS g "
                    f"FROM {t} WHERE geom IS NOT NULL ORDER BY code"
                )
            )
        ]
    return out


def publish(
    engine: Engine,
    year: int,
    created_by: str,
    note: str | None = None,
    rules: Rules | None = None,
) -> dict:
    """Freeze ``year``'s figures as its next edition (both audiences) and return the edition's
    summary: year, edition, created_at, contents, content hash, and the diff from the previous
    edition (analyst audience; the public one is stored with the public content)."""
    rules = rules or get_rules()
    full = build(engine, year, rules)
    public = public_edition(full, rules.publication.disclosure_min_enterprises)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('publication'), :y)"), {"y": year})
        prev = conn.execute(
            text("SELECT id, edition FROM publications WHERE year = :y ORDER BY edition DESC"),
            {"y": year},
        ).first()
        edition = 1 if prev is None else prev.edition + 1
        old = {}
        if prev is not None:
            old = dict(
                conn.execute(
                    text(
                        "SELECT audience, content FROM publication_contents "
                        "WHERE publication_id = :p"
                    ),
                    {"p": prev.id},
                ).all()
            )
        hashes = {"analyst": content_hash(full), "public": content_hash(public)}
        as_of = conn.execute(
            text("SELECT as_of FROM analysis_runs WHERE finished_at IS NOT NULL "
                 "ORDER BY id DESC LIMIT 1")
        ).scalar_one_or_none()  # fmt: skip
        pid = conn.execute(
            text(
                """
                INSERT INTO publications (year, edition, created_by, note, rules_hash, as_of,
                    contents, content_hash, geometry)
                VALUES (:y, :e, :by, :note, :rh, :as_of, CAST(:contents AS jsonb), :h,
                    CAST(:geom AS jsonb))
                RETURNING id
                """
            ),
            {
                "y": year,
                "e": edition,
                "by": created_by,
                "note": note,
                "rh": rules_hash(rules),
                "as_of": as_of,
                "contents": canonical(full["contents"]).decode(),
                "h": hashlib.sha256((hashes["analyst"] + hashes["public"]).encode()).hexdigest(),
                "geom": canonical(_geometry(conn)).decode(),
            },
        ).scalar_one()
        diffs = {}
        for audience, content in (("analyst", full), ("public", public)):
            d = diff(old[audience], content, edition - 1) if audience in old else None
            diffs[audience] = d
            conn.execute(
                text(
                    """
                    INSERT INTO publication_contents (publication_id, audience, content,
                        content_hash, diff)
                    VALUES (:p, :a, CAST(:c AS jsonb), :h, CAST(:d AS jsonb))
                    """
                ),
                {
                    "p": pid,
                    "a": audience,
                    "c": canonical(content).decode(),
                    "h": hashes[audience],
                    "d": None if d is None else canonical(d).decode(),
                },
            )
    return get(engine, year, edition, "analyst") | {"diff": diffs["analyst"]}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))
    return a == b


def diff(old: dict, new: dict, against: int) -> dict:
    """What differs from ``old`` to ``new`` (two contents of one audience): sections added and
    removed, and per table rows added and removed (by key) and figures changed old → new."""

    def tables(c: dict) -> dict[str, dict]:
        return {t["id"]: t for s in c["sections"].values() for t in s["tables"]}

    ot, nt = tables(old), tables(new)
    out: dict = {
        "against_edition": against,
        "sections_added": sorted(set(new["sections"]) - set(old["sections"])),
        "sections_removed": sorted(set(old["sections"]) - set(new["sections"])),
        "tables": [],
    }
    for tid in [t for t in nt if t in ot]:
        a, b = ot[tid], nt[tid]

        def keyed(t: dict) -> dict[str, dict]:
            return {"|".join(str(r.get(k)) for k in t["key"]): r for r in t["rows"]}

        ra, rb = keyed(a), keyed(b)
        labels = {c["name"]: c["label"] for c in b["columns"]}
        changed = []
        for k in [k for k in rb if k in ra]:
            for col in labels:
                if col in b["key"]:
                    continue
                x, y = ra[k].get(col), rb[k].get(col)
                if not _same(x, y):
                    changed.append({"key": k, "column": col, "label": labels[col], "old": x,
                                    "new": y})  # fmt: skip
        added = [k for k in rb if k not in ra]
        removed = [k for k in ra if k not in rb]
        if changed or added or removed:
            out["tables"].append({"table": tid, "title": b["title"], "rows_added": added,
                                  "rows_removed": removed, "changed": changed})  # fmt: skip
    out["unchanged"] = not (out["tables"] or out["sections_added"] or out["sections_removed"])
    return out


# ---- reading -----------------------------------------------------------------------------------


def list_publications(engine: Engine) -> list[dict]:
    """Every edition, newest year first, then newest edition: metadata only."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT year, edition, created_at, created_by, note, rules_hash, as_of, "
                "contents, content_hash FROM publications ORDER BY year DESC, edition DESC"
            )
        ).all()
    return [_meta(r) for r in rows]


def _meta(r) -> dict:
    return {
        "year": r.year,
        "edition": r.edition,
        "created_at": r.created_at.isoformat(),
        "created_by": r.created_by,
        "note": r.note,
        "rules_hash": r.rules_hash,
        "as_of": r.as_of.isoformat() if r.as_of else None,
        "contents": r.contents,
        "content_hash": r.content_hash,
    }


def get(
    engine: Engine, year: int, edition: int | None, audience: str, geometry: bool = False
) -> dict:
    """One edition (default: the latest of the year) in ``audience`` (public | analyst): its
    metadata, the content as frozen, its hash (checked) and its diff from the previous edition;
    PublicationError when there is none."""
    with engine.connect() as conn:
        r = conn.execute(
            text(
                """
                SELECT p.*, c.content, c.content_hash AS audience_hash, c.diff
                FROM publications p JOIN publication_contents c
                     ON c.publication_id = p.id AND c.audience = :a
                WHERE p.year = :y AND p.edition = coalesce(CAST(:e AS bigint),
                    (SELECT max(edition) FROM publications WHERE year = :y))
                """
            ),
            {"y": year, "e": edition, "a": audience},
        ).first()
    if r is None:
        what = f"edition {edition} of {year}" if edition else f"{year}"
        raise PublicationError(
            f"no publication {what}: GET /api/publications lists them; 'landlink publish "
            f"--year {year}' makes one"
        )
    if content_hash(r.content) != r.audience_hash:
        raise PublicationError(
            f"publication {year} edition {r.edition} ({audience}): its content does not match "
            "its hash"
        )
    out = _meta(r) | {
        "audience": audience,
        "audience_hash": r.audience_hash,
        "diff": r.diff,
        "content": r.content,
    }
    if geometry:
        out["geometry"] = r.geometry
    return out

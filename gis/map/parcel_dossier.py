"""A parcel's dossier (地块档案) for the map page's side panel.

For one surveyed parcel (DK, by DKBH): its area (m², 亩; geometry in EPSG:4549), land use, the
district / platform / corridor holding the largest share of it, its supply record (GD) and dates,
the approvals (PZ) it lies on, where it stands on Zhejiang's chain 批而未供 → 供而未用 → 用而未尽 →
建而未投 → 投而未达标 (DOMAIN_RULES §3; the one placement, gis/lands/chain.py), its
enterprises with their evaluation class, their projects, and its three-lands findings (the
latest detection run) with reasons.

Its zones, supply record and enterprises are its rows of ``links``, the one DOMAIN_RULES §1
linkage (gis/economy/linkage.py): supply record by DZJGH, else the supply polygon covering at
least half of the parcel; enterprises by DKBH, else the parcel covering the enterprise's point,
else the nearest parcel within 50 m. Tax figures (亩均税收 by year, SJSJ) only for analysts: public
callers get ``tax: null`` and the tax_per_mu finding without its figure.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, text

from gis.core import vocabulary
from gis.core.layers import INDUSTRIAL_LAND_CODES, M2_PER_MU
from gis.economy.linkage import ZONES
from gis.lands import chain
from gis.lands.detection import CURRENT_RUN

MU_PER_M2 = 1 / M2_PER_MU

IDLE_LABELS = vocabulary.labels("idle_status")
REASON_LABELS = vocabulary.labels("low_efficiency_reason")
LAND_KIND = vocabulary.labels("land_kind")


def redact_reasons(reasons: list[dict], analyst: bool) -> list[dict]:
    """Withhold the tax_per_mu figure from public callers (as gis.lands.land_summary.redact
    does)."""
    if analyst:
        return reasons
    return [
        {
            **r,
            "figure": None,
            "threshold": None,
            "basis": "亩均税收: analyst token needed",
            "restricted": True,
        }
        if r.get("code") == "tax_per_mu"
        else r
        for r in reasons
    ]


class ParcelNotFound(LookupError):
    """No parcel with that DKBH."""


def _one(conn: Connection, sql: str, **params) -> dict | None:
    row = conn.execute(text(sql), params).mappings().first()
    return dict(row) if row else None


def _all(conn: Connection, sql: str, **params) -> list[dict]:
    return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def _zones(conn: Connection, parcel_no: str) -> dict[str, dict | None]:
    """The district, platform and corridor holding the largest share of the parcel: its primary
    ``parcel_<zone>`` links (the one §1 linkage, gis/economy/linkage.py), in one statement."""
    found = {
        r["level"]: {k: r[k] for k in ("code", "name", "share")}
        for r in _all(
            conn,
            " UNION ALL ".join(
                f"""SELECT '{level}' AS level, z.code, z.name,
                           round(l.share::numeric, 4)::float8 AS share
                    FROM links l JOIN {table} z ON z.code = l.to_key
                    WHERE l.kind = 'parcel_{level}' AND l.from_key = :no AND l.is_primary"""
                for level, table in ZONES.items()
            ),
            no=parcel_no,
        )
    }
    return {level: found.get(level) for level in ZONES}


def _supply(conn: Connection, parcel: dict, pid: int) -> tuple[dict | None, str | None]:
    """The parcel's supply record and how it was linked (``key`` or ``overlap``): its
    ``supply_parcel`` link (the one §1 linkage, gis/economy/linkage.py)."""
    s = _one(
        conn,
        """
        SELECT s.id, s.supply_no, s.method, s.land_use_code, s.supplied_on, s.grantee_name,
               s.grantee_uscc, s.agreed_start, s.agreed_completion, s.actual_start,
               s.actual_completion, s.stopped_on, s.plot_ratio_min, s.plot_ratio_max,
               s.agreed_investment, s.investment_made, s.developed_area_m2,
               round(s.area_m2::numeric, 2)::float8 AS area_m2,
               round((s.area_m2 * :mu)::numeric, 4)::float8 AS area_mu, l.method AS how
        FROM links l JOIN supplies s ON s.supply_no = l.from_key
        WHERE l.kind = 'supply_parcel' AND l.to_key = :no
        """,
        no=parcel["parcel_no"],
        mu=MU_PER_M2,
    )
    if s is None:
        return None, None
    return s, s.pop("how")


def _enterprises(conn: Connection, pid: int, parcel_no: str) -> list[dict]:
    """The parcel's enterprises: its ``enterprise_parcel`` links (the one §1 linkage,
    gis/economy/linkage.py: DKBH, else the parcel covering the point, else the nearest within
    50 m)."""
    return _all(
        conn,
        """
        SELECT DISTINCT ON (e.name, e.uscc) e.uscc, e.name, e.industry_code, e.above_size,
               l.method AS how, round(l.distance_m::numeric, 1)::float8 AS distance_m,
               e.parcel_nos
        FROM links l JOIN enterprises e ON e.uscc = l.from_key
        WHERE l.kind = 'enterprise_parcel' AND l.to_key = :no
        ORDER BY e.name, e.uscc
        """,
        no=parcel_no,
    )


def _tax_by_year(conn: Connection, usccs: list[str]) -> dict[str, list[dict]]:
    """SJSJ (万元), land (m²) and 亩均税收 (万元/亩) per enterprise and year over all its land:
    the enterprise rows of ``per_mu``, the figures the evaluation scores (gis/economy/per_mu.py,
    kept current by every write)."""
    out: dict[str, list[dict]] = {}
    for r in _all(
        conn,
        """SELECT code AS uscc, year, tax_paid,
                  round((area_mu * :m2)::numeric, 1)::float8 AS land_m2,
                  round(tax_per_mu::numeric, 3)::float8 AS tax_per_mu
           FROM per_mu WHERE level = 'enterprise' AND code = ANY(:u)
           ORDER BY code, year""",
        u=usccs,
        m2=M2_PER_MU,
    ):
        out.setdefault(r.pop("uscc"), []).append(r)
    return out


def _evaluation_classes(conn: Connection, usccs: list[str]) -> dict[str, dict]:
    """The latest A/B/C/D class of each enterprise (``evaluation_ranking``, the evaluation
    producer's table; none before the first run)."""
    rows = _all(
        conn,
        """SELECT DISTINCT ON (uscc) uscc, year, class FROM evaluation_ranking
           WHERE uscc = ANY(:u) ORDER BY uscc, year DESC""",
        u=usccs,
    )
    return {r["uscc"]: {"class": r["class"], "year": r["year"]} for r in rows}


def dossier(engine: Engine, parcel_no: str, analyst: bool) -> dict[str, Any]:
    """The dossier of parcel ``parcel_no`` (DKBH); raises ParcelNotFound."""
    with engine.connect() as conn:
        parcel = _one(
            conn,
            """
            SELECT p.id, p.parcel_no, p.land_use_code, p.actual_use, p.floor_area_m2,
                   p.footprint_m2, p.supply_no, p.holder_name, p.holder_uscc, p.district_code,
                   round(p.area_m2::numeric, 2)::float8 AS area_m2,
                   round((p.area_m2 * :mu)::numeric, 4)::float8 AS area_mu,
                   round((p.floor_area_m2 / nullif(p.area_m2, 0))::numeric, 3)::float8
                       AS plot_ratio,
                   round((p.footprint_m2 / nullif(p.area_m2, 0))::numeric, 4)::float8
                       AS footprint_share,
                   ST_AsGeoJSON(ST_Transform(p.geom, 4326), 7)::json AS geometry,
                   ARRAY[ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)] AS bbox
            FROM parcels p,
                 LATERAL (SELECT ST_Transform(ST_Envelope(p.geom), 4326) AS b) x
            WHERE p.parcel_no = :no
            """,
            no=parcel_no,
            mu=MU_PER_M2,
        )
        if parcel is None:
            raise ParcelNotFound(f"no parcel with DKBH {parcel_no!r}")
        pid = parcel.pop("id")
        parcel["land_use"] = INDUSTRIAL_LAND_CODES.get(parcel["land_use_code"], "非工业用地")
        zones = _zones(conn, parcel["parcel_no"])
        supply, supply_link = _supply(conn, parcel, pid)
        sid = supply.pop("id") if supply else None
        geom_sql = (
            "(SELECT geom FROM supplies WHERE id = :sid)"
            if sid
            else ("(SELECT geom FROM parcels WHERE id = :pid)")
        )
        approvals = _all(
            conn,
            f"""
            SELECT a.doc_no, a.batch_name, a.approved_on,
                   round((a.area_m2 * :mu)::numeric, 4)::float8 AS area_mu
            FROM approvals a, {geom_sql} g(geom)
            WHERE a.geom && g.geom AND ST_Intersects(a.geom, g.geom)
              AND ST_Area(ST_Intersection(a.geom, g.geom)) >= :ash * ST_Area(g.geom)
            ORDER BY a.approved_on, a.doc_no
            """,
            sid=sid,
            pid=pid,
            mu=MU_PER_M2,
            ash=chain.APPROVAL_MIN_SHARE,
        )
        run = _one(conn, f"SELECT id, as_of FROM detection_runs WHERE id = {CURRENT_RUN}")
        idle = low = None
        unsupplied: list[dict] = []
        if run:
            if sid:
                idle = _one(
                    conn,
                    """SELECT status, days_overdue, rule, consequence, records_disagree,
                              round(footprint_share::numeric, 4)::float8 AS footprint_share,
                              figures
                       FROM idle_results WHERE run_id = :r AND supply_id = :sid""",
                    r=run["id"],
                    sid=sid,
                )
                if idle:
                    idle["status_label"] = IDLE_LABELS.get(idle["status"], idle["status"])
            low = _one(
                conn,
                "SELECT reason_codes, reasons FROM low_efficiency_results "
                "WHERE run_id = :r AND parcel_id = :pid",
                r=run["id"],
                pid=pid,
            )
            if low:
                low["reasons"] = redact_reasons(low["reasons"], analyst)
                for r in low["reasons"]:
                    r["label"] = REASON_LABELS.get(r.get("code"), r.get("code"))
            if approvals:
                unsupplied = _all(
                    conn,
                    """SELECT approval_no, status, age_band,
                              round(unsupplied_mu::numeric, 4)::float8 AS unsupplied_mu,
                              round(unsupplied_share::numeric, 4)::float8 AS unsupplied_share
                       FROM unsupplied_results
                       WHERE run_id = :r AND approval_no = ANY(:nos)""",
                    r=run["id"],
                    nos=[a["doc_no"] for a in approvals],
                )
        enterprises = _enterprises(conn, pid, parcel["parcel_no"])
        usccs = [e["uscc"] for e in enterprises]
        classes = _evaluation_classes(conn, usccs) if usccs else {}
        failed = (
            _all(
                conn,
                "SELECT uscc, year, kind, note FROM failed_standards WHERE uscc = ANY(:u) "
                "ORDER BY uscc, year DESC, kind",
                u=usccs,
            )
            if usccs
            else []
        )
        projects = _all(
            conn,
            """
            SELECT project_code, name, uscc, status, planned_investment, investment_made,
                   started_on, production_on
            FROM projects
            WHERE parcel_no = :no OR (CAST(:sno AS text) IS NOT NULL AND supply_no = :sno)
            ORDER BY project_code
            """,
            no=parcel["parcel_no"],
            sno=supply["supply_no"] if supply else None,
        )
        tax = _tax_by_year(conn, usccs) if (analyst and usccs) else None
        place = chain.describe(chain.facts(conn, [parcel["parcel_no"]])[parcel["parcel_no"]])
    for e in enterprises:
        e["evaluation"] = classes.get(e["uscc"])
        e["failed_standards"] = [
            {k: f[k] for k in ("year", "kind", "note") if analyst or k != "note"}  # SM: analysts
            for f in failed
            if f["uscc"] == e["uscc"]
        ]
        e["tax_by_year"] = tax.get(e["uscc"], []) if tax is not None else None
    findings = []
    if idle and idle["status"] != "started":
        findings.append(
            {
                "kind": "idle",
                "label": LAND_KIND["idle"],
                "status": idle["status"],
                "status_label": idle["status_label"],
                "reason": idle["consequence"],
                "rule": idle["rule"],
            }
        )
    if idle and idle.get("records_disagree"):
        findings.append(
            {
                "kind": "idle",
                "label": "记录与现状不一致",
                "status": "records_disagree",
                "status_label": "记录已开工但建筑基底不足5%",
                "reason": idle["rule"],
                "rule": None,
            }
        )
    for u in unsupplied:
        if u["status"] != "supplied":
            findings.append(
                {
                    "kind": "unsupplied",
                    "label": LAND_KIND["unsupplied"],
                    "status": u["status"],
                    "status_label": f"批文 {u['approval_no']}: 未供 {u['unsupplied_mu']} 亩",
                    "reason": f"批准年限 {u['age_band']} 年",
                    "rule": None,
                }
            )
    for r in (low or {}).get("reasons", []):
        findings.append(
            {
                "kind": "low_efficiency",
                "label": LAND_KIND["low_efficiency"],
                "status": r.get("code"),
                "status_label": r["label"],
                "reason": r.get("basis") or r.get("source"),
                "figure": r.get("figure"),
                "threshold": r.get("threshold"),
                "unit": r.get("unit"),
                "restricted": r.get("restricted", False),
            }
        )
    return {
        "parcel": parcel,
        "zones": zones,
        "supply": supply,
        "supply_link": supply_link,
        "approvals": approvals,
        "chain": place,
        "idle": idle,
        "low_efficiency": low,
        "unsupplied": unsupplied,
        "findings": findings,
        "enterprises": enterprises,
        "projects": projects,
        "run": {"id": run["id"], "as_of": run["as_of"]} if run else None,
        "tax_visible": analyst,
        "as_of": date.today().isoformat() if run is None else run["as_of"].isoformat(),
    }

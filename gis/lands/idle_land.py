"""供而未用 / 闲置土地 (supplied, not used / idle land), DOMAIN_RULES §3.

Source: 《闲置土地处置办法》(国土资源部令第53号, 2012), art. 2 (what is idle) and art. 14 (the
consequences). For each supply record (GD) supplied on or before ``as_of``, one status:

- ``not_due``: not started and ``as_of <= HTKGSJ`` (agreed start not passed).
- ``overdue``: not started, ``HTKGSJ < as_of < HTKGSJ + 1 year`` (供而未用, a warning).
- ``idle``: not started, ``HTKGSJ + 1 year <= as_of < HTKGSJ + 2 years`` (闲置: 土地闲置费).
- ``idle_reclaimable``: not started, ``as_of >= HTKGSJ + 2 years`` (无偿收回 candidate).
- ``partial_idle``: started, not completed, stopped (TGRQ) at least one year before ``as_of``, and
  developed area YKFMJ < 1/3 of the supplied area or investment SJTZ < 25 % of YDTZ.
- ``started``: started and none of the above.

Years are calendar years (PostgreSQL ``date + interval 'n year'``; 29 February + 1 year = 28
February). "Started" means SJKGSJ (or SJJGSJ) on or before ``as_of``; dates after ``as_of`` are not
yet known at that date. ``days_overdue`` is ``as_of - HTKGSJ`` for the not-started statuses past
their date and ``as_of - TGRQ`` for ``partial_idle``. Areas from geometry in EPSG:4549, m² and 亩.
The parcels of a supply record (for the footprint check) are its ``supply_parcel`` links in
``links`` (the one §1 linkage, gis/economy/linkage.py: DZJGH, else largest overlap).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, text

from gis.core.layers import M2_PER_MU
from gis.core.rules import IdleRules

CONSEQUENCES = {
    "not_due": "未到约定开工时间 / agreed start date not yet reached",
    "started": "已开工 / construction started",
    "overdue": "供而未用：超过约定开工时间未满一年，预警 / past the agreed start date, "
    "not started, under one year: warning (art. 2)",
    "idle": "闲置土地：未开工满一年，可按出让或划拨价款的20%以下征收土地闲置费（第十四条第一项）"
    " / idle one year or more: idle-land fee up to 20 % of the land price (art. 14 (1))",
    "idle_reclaimable": "闲置土地：未开工满两年，可无偿收回国有建设用地使用权（第十四条第二项）"
    " / idle two years or more: may be taken back without compensation (art. 14 (2))",
    "partial_idle": "已开工但开发面积不足三分之一或投资不足百分之二十五，中止开发建设满一年，"
    "可认定为闲置土地（第二条）；满一年可征收土地闲置费，满两年可无偿收回（第十四条）"
    " / started, under 1/3 developed or under 25 % invested, stopped one year or more: may be "
    "found idle (art. 2); fee at one year, taking back at two (art. 14)",
}
RULES = {
    "not_due": "art. 2: as_of <= HTKGSJ",
    "started": "started (SJKGSJ <= as_of), not the partial-development case",
    "overdue": "art. 2: HTKGSJ < as_of < HTKGSJ + 1 year, not started",
    "idle": "art. 2, 14 (1): HTKGSJ + 1 year <= as_of < HTKGSJ + 2 years, not started",
    "idle_reclaimable": "art. 14 (2): as_of >= HTKGSJ + 2 years, not started",
    "partial_idle": "art. 2: started, (YKFMJ < 1/3 area or SJTZ < 25 % YDTZ), "
    "TGRQ + 1 year <= as_of",
}
FLAGGED = ("overdue", "idle", "idle_reclaimable", "partial_idle")


def _case(mapping: dict[str, str]) -> str:
    return (
        "CASE status "
        + " ".join(
            f"WHEN '{k}' THEN '{v.replace(chr(39), chr(39) * 2)}'" for k, v in mapping.items()
        )
        + " END"
    )


def detect(
    conn: Connection,
    run_id: int,
    as_of: date,
    rules: IdleRules,
    keys: list[str] | None = None,
    *,
    into: str,
) -> None:
    """Write the ``idle_results`` rows of ``run_id`` for the supply records ``keys`` (DZJGH;
    None: every record), their status as of ``as_of``, into the table ``into`` (of that table's
    columns; the caller has removed the rows they replace). Zone codes are left NULL (the caller
    sets them from the zone shares)."""
    params = {
        "keys": keys,
        "run": run_id,
        "as_of": as_of,
        "idle_y": rules.idle_after_years,
        "reclaim_y": rules.reclaim_after_years,
        "dev": rules.partial_developed_share,
        "inv": rules.partial_investment_share,
        "stop_y": rules.partial_stopped_years,
        "fp": rules.footprint_min_share,
        "mu": 1 / M2_PER_MU,
    }
    # each record's linked parcels with their footprint and area: looked up per record for a
    # few records, one grouped join for all of them (a lookup per record of 94,253 took twice
    # as long)
    parcels = """
        SELECT l.from_key AS supply_no,
               array_agg(q.parcel_no ORDER BY q.parcel_no) AS parcel_nos,
               sum(q.footprint_m2::numeric)::float8 AS footprint_m2,
               sum(q.area_m2::numeric) FILTER (WHERE q.footprint_m2 IS NOT NULL)::float8
                   AS parcel_m2
        FROM links l JOIN parcels q ON q.parcel_no = l.to_key
        WHERE l.kind = 'supply_parcel' AND l.to_key IS NOT NULL AND {which}
        GROUP BY l.from_key"""
    if keys is None:
        footprints, joined = f"({parcels.format(which='true')})", "p.supply_no = s.supply_no"
    else:
        footprints = f"LATERAL ({parcels.format(which='l.from_key = s.supply_no')})"
        joined = "true"
    conn.execute(
        text(
            f"""
            INSERT INTO {into} (
                run_id, supply_id, supply_no, status, days_overdue, area_m2, area_mu, supplied_on,
                agreed_start, actual_start, actual_completion, stopped_on, rule, consequence,
                figures, footprint_share, records_disagree, parcel_nos, as_of)
            SELECT :run, id, supply_no, status,
                   CASE WHEN status IN ('overdue', 'idle', 'idle_reclaimable')
                            THEN CAST(:as_of AS date) - agreed_start
                        WHEN status = 'partial_idle' THEN CAST(:as_of AS date) - stopped_on END,
                   area_m2, area_m2 * :mu, supplied_on, agreed_start, actual_start,
                   actual_completion, stopped_on, {_case(RULES)}, {_case(CONSEQUENCES)},
                   jsonb_strip_nulls(jsonb_build_object(
                       'agreed_start', agreed_start, 'actual_start', actual_start,
                       'actual_completion', actual_completion, 'stopped_on', stopped_on,
                       'idle_from', CASE WHEN NOT started
                           THEN CAST(agreed_start + make_interval(years => :idle_y) AS date) END,
                       'reclaimable_from', CASE WHEN NOT started
                           THEN CAST(agreed_start + make_interval(years => :reclaim_y) AS date) END,
                       'supplied_m2', round(area_m2::numeric, 1),
                       'developed_m2', developed_area_m2,
                       'developed_share', round(dev_share::numeric, 4),
                       'developed_share_min', round(CAST(:dev AS numeric), 4),
                       'investment_made', investment_made,
                       'agreed_investment', agreed_investment,
                       'investment_share', round(inv_share::numeric, 4),
                       'investment_share_min', CAST(:inv AS numeric),
                       'years_stopped', CASE WHEN stopped
                           THEN round(((CAST(:as_of AS date) - stopped_on) / 365.25)::numeric, 2)
                           END,
                       'footprint_m2', footprint_m2, 'parcel_m2', round(parcel_m2::numeric, 1),
                       'footprint_share', round(footprint_share::numeric, 4),
                       'footprint_share_min', CAST(:fp AS numeric))),
                   footprint_share,
                   CASE WHEN started AND footprint_share IS NOT NULL
                        THEN footprint_share < :fp END,
                   parcel_nos, :as_of
            FROM (
                SELECT b.*,
                    CASE
                        WHEN started AND stopped AND NOT completed
                             AND stopped_on + make_interval(years => :stop_y) <= :as_of
                             AND (dev_share < :dev OR inv_share < :inv) THEN 'partial_idle'
                        WHEN started THEN 'started'
                        WHEN :as_of <= agreed_start THEN 'not_due'
                        WHEN :as_of < agreed_start + make_interval(years => :idle_y)
                            THEN 'overdue'
                        WHEN :as_of < agreed_start + make_interval(years => :reclaim_y)
                            THEN 'idle'
                        ELSE 'idle_reclaimable'
                    END AS status
                FROM (
                    SELECT s.id, s.supply_no, s.area_m2, s.supplied_on, s.agreed_start,
                        s.developed_area_m2, s.investment_made, s.agreed_investment,
                        CASE WHEN s.actual_start <= :as_of THEN s.actual_start END AS actual_start,
                        CASE WHEN s.actual_completion <= :as_of
                             THEN s.actual_completion END AS actual_completion,
                        CASE WHEN s.stopped_on <= :as_of THEN s.stopped_on END AS stopped_on,
                        coalesce(s.actual_start <= :as_of OR s.actual_completion <= :as_of, false)
                            AS started,
                        coalesce(s.actual_completion <= :as_of, false) AS completed,
                        coalesce(s.stopped_on <= :as_of, false) AS stopped,
                        s.developed_area_m2 / nullif(s.area_m2, 0) AS dev_share,
                        s.investment_made / nullif(s.agreed_investment, 0) AS inv_share,
                        p.footprint_m2, p.parcel_m2,
                        p.footprint_m2 / nullif(p.parcel_m2, 0) AS footprint_share,
                        coalesce(p.parcel_nos, '{{}}') AS parcel_nos
                    FROM supplies s
                    LEFT JOIN {footprints} p ON {joined}
                    WHERE s.supplied_on <= :as_of
                      {"" if keys is None else "AND s.supply_no = ANY(CAST(:keys AS text[]))"}
                ) b
            ) c
            """
        ),
        params,
    )

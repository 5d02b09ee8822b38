"""项目—用地—产出 linkage (DOMAIN_RULES §1), as set-based PostGIS SQL into the ``links`` table.

This is the one §1 linkage: the evaluation (per_mu, enterprise_land), the three lands, the
platform kinds (through per_mu), the parcel dossier, the tiles and search read ``links``; none
of them matches enterprises, supply records or zones to parcels on its own.

Links, each with how it was made (``key``, ``contains``, ``nearest``, ``overlap``):

- ``enterprise_parcel``: by DKBH where it names parcels (every named parcel that exists);
  else the parcel covering the enterprise's point (points given in GCJ-02 were converted to
  WGS84 and then EPSG:4549 at import; a point on a boundary is covered); where several parcels
  cover it (overlapping parcels), the smallest one (the most specific), ties by parcel_no (DKBH);
  else the nearest parcel within ``linkage.nearest_max_m`` (50 m), with its distance; equal
  distances (to the centimetre) go to the lowest parcel_no. One parcel per enterprise except by
  DKBH. An enterprise matched by none gets a row with ``to_key`` NULL and the reason (with the
  distance of the nearest parcel, however far).
- ``supply_parcel``: per parcel, the supply record its DZJGH names; else the supply record with
  the largest overlap if it covers >= ``supply_min_overlap`` (50 %) of the parcel (``share``),
  ties by supply_no.
- ``project_supply`` / ``project_parcel``: by the project's DZJGH / DKBH; else by polygon overlap
  (largest, >= ``project_min_overlap`` of the project's area).
- ``parcel_district`` / ``parcel_platform`` / ``parcel_corridor``: every zone a parcel overlaps,
  with the share of its area there; ``is_primary`` marks the largest share (§1), ties by code.
- ``enterprise_district`` / ``_platform`` / ``_corridor``: from its parcels (share of its parcel
  area lying in the zone, method ``overlap``), else from its point (``contains``).

A record that cannot be linked gets a row with ``to_key`` NULL and the reason (for supply
records no parcel lies in: ``from_key`` the supply, ``to_key`` NULL; for parcels no supply record
covers: ``from_key`` NULL, ``to_key`` the parcel). Geometry EPSG:4549, distances m, areas m².

The producer ``linkage`` (``PRODUCERS``) reads enterprises, parcels, supplies, projects,
districts, platforms and corridors and writes ``links``, by changed keys:

- a changed enterprise (USCC): its enterprise_parcel and enterprise_<zone> rows;
- a changed parcel (DKBH): the enterprises linked to it before, those naming it by DKBH and
  those whose point lies within ``nearest_max_m`` of its geometry now, and the unlinked
  enterprises whose reason's nearest-parcel distance it may move (``_REASON_MAY_MOVE``); its
  supply_parcel and
  parcel_<zone> rows; the projects linked to it before, naming it or overlapping it now, and
  the unlinked projects whose reason names it as their largest overlap;
- a changed supply record (DZJGH): the parcels linked to it before, naming it or overlapping it
  now (and the unlinked parcels whose reason names it); its projects likewise;
- a changed project: its rows;
- a changed zone (district, platform, corridor code): that level's rows of every parcel and
  enterprise;
- a layer changed whole (``ALL``: a first load): the rows above for every key of that layer
  (every enterprise's, every supply record's and project's, every project's), and no others;
  every parcel changed: every row (what a full recompute does).

A key no longer in its table (a retired row) loses its rows. Rows are DELETEd and INSERTed
(a full recompute DELETEs every row), never TRUNCATEd.

It returns (keys as text; ``ALL`` for each after a full recompute)::

    Changes(
        links={every from_key and to_key of a row that appeared, went or changed},
        enterprise_parcel={USCC whose enterprise_parcel or enterprise_<zone> rows changed},
        parcel_links={DKBH whose supply_parcel, parcel_<zone>, enterprise_parcel (as target)
                      or project_parcel (as target) rows changed},
        zone_links={"level:code" (e.g. "platform:PT01") of every zone a parcel_<zone> row
                    that appeared, went or changed names, before or after: the zones whose
                    parcels changed},
        land_links={every from_key and to_key of an enterprise_parcel, enterprise_<zone> or
                    parcel_<zone> row that appeared, went or changed: the links an
                    enterprise's land and the zones' sums read},
    )

``enterprise_parcel``, ``parcel_links``, ``zone_links`` and ``land_links`` are pseudo-tables
(no such tables exist): the narrower sets for readers of ``links`` that want only the
enterprises, only the parcels, only the zones or only what land is made of. A first load of
supply records or projects returns ``ALL`` for ``links`` and ``parcel_links`` and nothing for
the others: no enterprise or zone row was made. ``zone_links`` holds the zones a parcel left
as well as those it entered, which the links as they are now no longer tell: the zones whose
industrial land and parcel count (the indicators, the tiles) may have changed. An enterprise
that moves between zones changes neither; its zones' figures reach their readers through
per_mu's rows.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, text

from gis.core.db import run_sql
from gis.core.graph import ALL, Changes, Context, Producer, written_extent
from gis.core.rules import LinkageRules

ZONES = {"district": "districts", "platform": "platforms", "corridor": "corridors"}
ZONE_NAMES = {"district": "district", "platform": "platform", "corridor": "corridor"}
ENTERPRISE_KINDS = ("enterprise_parcel", *(f"enterprise_{z}" for z in ZONES))
PROJECT_KINDS = ("project_supply", "project_parcel")
ZONE_KINDS = tuple(f"{o}_{z}" for o in ("parcel", "enterprise") for z in ZONES)

# the columns compared between runs (every column but the run's stamp)
_LINK_COLS = "kind, from_key, to_key, method, distance_m, share, is_primary, reason, rule"
_COLS = f"{_LINK_COLS}, run_id, as_of"


def _ov(a: str, b: str, b_area: str) -> str:
    """Overlap area (m²) of polygon a with polygon b; b's own area when a covers b, and never
    more (b's stored area is to the hundredth, the overlap is not: a share stays at most 1)."""
    return (
        f"CASE WHEN ST_Covers({a}, {b}) THEN {b_area} "
        f"ELSE least({b_area}, ST_Area(ST_Intersection({a}, {b}))) END"
    )


def _in(col: str, name: str) -> str:
    """``col`` is one of the keys bound as ``:name`` (a text array; NULL: every key)."""
    return f"(CAST(:{name} AS text[]) IS NULL OR {col} = ANY(CAST(:{name} AS text[])))"


def counts(conn: Connection) -> dict:
    """Primary links per kind and method (``unlinked`` for rows without a target)."""
    rows = conn.execute(
        text(
            "SELECT kind, coalesce(method, 'unlinked') AS m, count(*) FROM links "
            "WHERE is_primary GROUP BY 1, 2 ORDER BY 1, 2"
        )
    ).all()
    out: dict[str, dict[str, int]] = {}
    for kind, m, n in rows:
        out.setdefault(kind, {})[m] = n
    return out


def _params(run_id: int, as_of: date, rules: LinkageRules) -> dict:
    return {
        "run": run_id,
        "as_of": as_of,
        "near": rules.nearest_max_m,
        "sov": rules.supply_min_overlap,
        "pov": rules.project_min_overlap,
    }


# An unlinked enterprise's reason ends with the distance of the nearest parcel in whole metres,
# " (nearest <round(d)> m away)" (``_enterprise_parcel``); ``_scope`` reads it back with this
# (the last such clause: the DKBH it names comes before it; NULL when there is none).
_NEAREST_NAMED = (
    "CASE WHEN l.reason LIKE '% (nearest % m away)' THEN CAST(split_part(split_part("
    "l.reason, ' (nearest ', -1), ' m away)', 1) AS float8) END"
)

# --------------------------------------------------------------------------------------------
# What a change touches
# --------------------------------------------------------------------------------------------

Scope = dict[str, "list[str] | bool | None"]  # ents, parcels, zparcels, supplies, projects,
# levels (lists of keys, None: every key) and whole


def _keys(changes: Changes, table: str) -> list[str]:
    return sorted(changes.get(table, ()))


def _col(conn: Connection, sql: str, **params) -> set[str]:
    return {r[0] for r in conn.execute(text(sql), params) if r[0] is not None}


# An enterprise no parcel is linked to (an ``enterprise_parcel`` row without ``to_key``) whose
# reason may name another nearest-parcel distance after the parcels ``:p`` changed. Every other
# enterprise a changed parcel can move is one linked to it before, naming it, or within
# ``nearest_max_m`` of it now (``_scope``); the unlinked ones outside those stay unlinked (no
# parcel names, covers or lies near their point), so only their reason's distance can move:
# the distance of the nearest parcel, however far, in whole metres (r, read back from the
# reason, ``_NEAREST_NAMED``). The parcels' old geometry is gone, so that a changed parcel
# was the nearest one is found from the others: the reason stands when no parcel now lies
# nearer than r rounds to and an unchanged parcel lies at a distance that rounds to r (the
# unchanged ones lay no nearer than the old nearest, so the nearest of them rounds to r, and
# the changed ones round to r or more). Both are read from the parcels within r + 0.5 m of the
# point (one GiST probe per unlinked enterprise, where finding each one's nearest parcel
# again meant a k-nearest-neighbour search per enterprise and recomputing all their rows).
# An enterprise without coordinates has no distance in its reason; one whose reason names no
# distance (there was no parcel) is recomputed. Where the transaction's writes to the parcels lay
# (``:box``, old rows and new: ``graph.written_extent``) bounds it further: a point farther than
# r + 0.5 m from every box had no changed parcel, before or after, within r + 0.5 m, so its
# reason stands without the probe (at scale 200, 13,815 probes took 0.35-0.45 s of a one-parcel
# change). NULL: not known, every unlinked enterprise is probed.
_REASON_MAY_MOVE = f"""
    SELECT l.from_key
    FROM links l
    CROSS JOIN LATERAL (  -- OFFSET 0: by the USCC index, one lookup per unlinked enterprise
        SELECT e.geom, r FROM enterprises e, LATERAL (SELECT {_NEAREST_NAMED} AS r) d
        WHERE e.uscc = l.from_key AND e.geom IS NOT NULL
          AND (r IS NULL OR CAST(:box AS geometry) IS NULL
               OR ST_DWithin(e.geom, CAST(:box AS geometry), r + 0.5))
        OFFSET 0
    ) n
    WHERE l.kind = 'enterprise_parcel' AND l.to_key IS NULL
      AND NOT coalesce((
          SELECT bool_and(q.m >= n.r)
                 AND bool_or(q.m = n.r AND q.parcel_no <> ALL(CAST(:p AS text[])))
          FROM (SELECT pa.parcel_no, round(ST_Distance(pa.geom, n.geom)) AS m
                FROM parcels pa WHERE ST_DWithin(pa.geom, n.geom, n.r + 0.5)) q
      ), false)
"""


def _scope(conn: Connection, changes: Changes, near: float) -> Scope | None:
    """The keys whose rows to recompute (see the module docstring), or None for all. Every
    row of a layer changed (a first load: ``ALL``) recomputes the rows that read it, for every
    key (None in the scope), and no others: a first load of the enterprises relinks every
    enterprise, not the parcels' zones and supply records; every parcel changed, everything."""
    if changes.everything("parcels"):
        return None
    e_all, s_all = changes.everything("enterprises"), changes.everything("supplies")
    j_all = changes.everything("projects")
    e0 = [] if e_all else _keys(changes, "enterprises")
    s0 = [] if s_all else _keys(changes, "supplies")
    p0, j0 = _keys(changes, "parcels"), [] if j_all else _keys(changes, "projects")
    # a zone table changed (even all of it): that level's rows of every parcel and enterprise
    levels = [lv for lv, t in ZONES.items() if changes.get(t)]
    ents, parcels, projects = set(e0), set(p0), set(j0)
    if p0:
        ents |= _col(
            conn,
            "SELECT from_key FROM links WHERE kind = 'enterprise_parcel' AND to_key = ANY(:p) "
            "UNION SELECT uscc FROM enterprises WHERE parcel_nos && CAST(:p AS text[]) "
            "UNION SELECT e.uscc FROM parcels pa JOIN enterprises e "
            "ON ST_DWithin(pa.geom, e.geom, :near) WHERE pa.parcel_no = ANY(:p)",
            p=p0,
            near=near,
        ) | _col(conn, _REASON_MAY_MOVE, p=p0, box=written_extent(conn, "parcels"))
    if s0:
        parcels |= _col(
            conn,
            "SELECT to_key FROM links WHERE kind = 'supply_parcel' AND from_key = ANY(:s) "
            "UNION SELECT to_key FROM links, unnest(CAST(:s AS text[])) s "
            "WHERE kind = 'supply_parcel' AND from_key IS NULL "
            "AND reason LIKE '%(largest overlap ' || s || ':%' "
            "UNION SELECT parcel_no FROM parcels WHERE supply_no = ANY(:s) "
            "UNION SELECT pa.parcel_no FROM supplies s JOIN parcels pa "
            "ON pa.geom && s.geom AND ST_Intersects(pa.geom, s.geom) WHERE s.supply_no = ANY(:s)",
            s=s0,
        )
    if p0 or s0:
        projects |= _col(
            conn,
            "SELECT from_key FROM links WHERE (kind = 'project_parcel' AND to_key = ANY(:p)) "
            "OR (kind = 'project_supply' AND to_key = ANY(:s)) "
            # unlinked projects whose reason names one of them as the largest overlap (first
            # those naming any largest overlap: one match per row, not one per row and key)
            "UNION SELECT l.from_key FROM links l, unnest(CAST(:p AS text[])) k "
            "WHERE l.kind = 'project_parcel' AND l.to_key IS NULL "
            "AND l.reason LIKE '%largest overlap %' "
            "AND strpos(l.reason, 'largest overlap ' || k || ' covers ') > 0 "
            "UNION SELECT l.from_key FROM links l, unnest(CAST(:s AS text[])) k "
            "WHERE l.kind = 'project_supply' AND l.to_key IS NULL "
            "AND l.reason LIKE '%largest overlap %' "
            "AND strpos(l.reason, 'largest overlap ' || k || ' covers ') > 0 "
            "UNION SELECT project_code FROM projects WHERE parcel_no = ANY(:p) "
            "OR supply_no = ANY(:s) "
            "UNION SELECT x.project_code FROM projects x JOIN parcels pa "
            "ON pa.geom && x.geom AND ST_Intersects(pa.geom, x.geom) WHERE pa.parcel_no = ANY(:p) "
            "UNION SELECT x.project_code FROM projects x JOIN supplies s "
            "ON s.geom && x.geom AND ST_Intersects(s.geom, x.geom) WHERE s.supply_no = ANY(:s)",
            p=p0,
            s=s0,
        )
    return {
        "ents": None if e_all else sorted(ents),
        "parcels": None if s_all else sorted(parcels),  # supply_parcel rows
        "zparcels": sorted(p0),  # parcel_<zone> rows (a parcel's zones move with its geometry)
        "supplies": None if s_all else s0,  # plus those linked to the parcels (see _link)
        "projects": None if j_all or s_all else sorted(projects),
        "levels": levels,  # zone levels recomputed for every parcel and enterprise
        # some layer changed whole (a first load): whole kinds of rows rewritten
        "whole": e_all or s_all or j_all or any(map(changes.everything, ZONES.values())),
    }


# --------------------------------------------------------------------------------------------
# The producer
# --------------------------------------------------------------------------------------------


def _produce(conn: Connection, ctx: Context, changes: Changes | None) -> Changes:
    """Producer ``linkage``: the §1 links of the changed keys (see the module docstring)."""
    p = _params(ctx.run_id or 0, ctx.as_of, ctx.rules.linkage)
    scope = None if changes is None else _scope(conn, changes, ctx.rules.linkage.nearest_max_m)
    out = _link(conn, p, scope)
    if scope is None:
        ctx.counts["links"] = counts(conn)
    return out


def _link(conn: Connection, p: dict, scope: Scope | None) -> Changes:
    """Recompute the rows of ``scope`` (None: every row) in ``links``; returns what changed."""
    full = scope is None
    # whole kinds of rows rewritten (a first load): returned as ALL, like a full recompute, so
    # the rows they replace need not be kept for the difference
    whole = full or bool(scope["whole"])
    conn.exec_driver_sql("CREATE TEMP TABLE _lk_old (LIKE links) ON COMMIT DROP")
    if full:
        conn.exec_driver_sql("DELETE FROM links")
        ents = parcels = zparcels = projects = None
        levels = list(ZONES)
    else:
        ents, parcels, zparcels = scope["ents"], scope["parcels"], scope["zparcels"]
        projects, levels = scope["projects"], scope["levels"]
    q = {**p, "e": ents, "pa": parcels, "zp": zparcels, "j": projects}

    def delete(where: str, **params) -> None:
        if full:  # every row went above
            return
        sql = f"DELETE FROM links WHERE {where}"
        if not whole:
            sql = f"WITH d AS ({sql} RETURNING *) INSERT INTO _lk_old SELECT * FROM d"
        conn.execute(text(sql), {**q, **params})

    # phase 1: rows that depend on the source tables only
    conn.exec_driver_sql("CREATE TEMP TABLE _lk_new (LIKE links) ON COMMIT DROP")

    # A rule whose keys are none (a change that touches no parcel, no enterprise, ...) has no
    # row to delete or make: it is skipped (each is a dozen statements, most of a small
    # change's time).
    def some(keys: list[str] | None) -> bool:
        return keys is None or bool(keys)

    def by_level(prefix: str, name: str, keys: list[str] | None):
        """Each zone level with its keys to link (every key where the level changed), its old
        links of ``prefix`` deleted: (level, zone table, keys)."""
        for level, table in ZONES.items():
            k = None if level in levels else keys
            if not some(k):
                continue
            delete(f"kind = :k AND {_in('from_key', name)}", k=f"{prefix}_{level}", **{name: k})
            yield level, table, k

    for level, table, k in by_level("parcel", "zp", zparcels):
        _parcel_zone(conn, {**q, "zp": k}, level, table)
    if some(ents):
        delete(f"kind = 'enterprise_parcel' AND {_in('from_key', 'e')}")
        _enterprise_parcel(conn, q)
    # the supply records linked to the parcels before (their "links to no parcel" row may change)
    supplies = None
    if not full and scope["supplies"] is not None:
        supplies = set(scope["supplies"])
        if parcels:
            supplies |= _col(
                conn,
                "SELECT from_key FROM links WHERE kind = 'supply_parcel' AND to_key = ANY(:p)",
                p=parcels,
            )
    if some(parcels):
        delete(f"kind = 'supply_parcel' AND to_key IS NOT NULL AND {_in('to_key', 'pa')}")
        _supply_parcel(conn, q)
    if some(projects):
        delete(f"kind IN {PROJECT_KINDS} AND {_in('from_key', 'j')}")
        _projects(conn, q)
    conn.exec_driver_sql("INSERT INTO links SELECT * FROM _lk_new")
    # phase 2: rows that read phase 1's links (supplies no parcel took, enterprises' zones)
    conn.exec_driver_sql("CREATE TEMP TABLE _lk_new2 (LIKE links) ON COMMIT DROP")
    if supplies is not None:
        supplies |= _col(
            conn,
            "SELECT from_key FROM _lk_new WHERE kind = 'supply_parcel' AND to_key IS NOT NULL",
        )
        supplies = sorted(supplies)
    if some(supplies):
        delete(
            f"kind = 'supply_parcel' AND to_key IS NULL AND {_in('from_key', 's')}",
            s=supplies,
        )
        _supply_unlinked(conn, {**q, "s": supplies})
    # the enterprises' zones: their parcels (``_ep``) read once for the levels of the same keys
    made_for: object = ()  # the keys ``_ep`` holds (none yet)
    for level, table, k in by_level("enterprise", "e", ents):
        _enterprise_zone(conn, {**q, "e": k}, level, table, made_for == k)
        made_for = k
    conn.exec_driver_sql("DROP TABLE IF EXISTS _ep")
    conn.exec_driver_sql("INSERT INTO links SELECT * FROM _lk_new2")
    conn.exec_driver_sql("INSERT INTO _lk_new SELECT * FROM _lk_new2")
    # whether a row of the kinds an enterprise's land and the zones' sums read was made again
    land = full or bool(levels) or some(zparcels) or some(ents)
    # whole kinds rewritten: their readers recompute everything too (a keyed refresh of most
    # keys is far slower than a whole one: the three lands' by-key paths took 108 s for the
    # first load of the scale-20 city's projects, against 3.5-5.9 s whole)
    out = _changed(conn, whole, land)
    conn.exec_driver_sql("DROP TABLE _lk_old, _lk_new, _lk_new2")
    if whole:  # statistics for the producers after
        conn.exec_driver_sql("ANALYZE links")
    return out


def _changed(conn: Connection, whole: bool, land: bool) -> Changes:
    """The returned keys, from the rows deleted (``_lk_old``) and inserted (``_lk_new``);
    ``whole``: kinds of rows rewritten whole, ``ALL`` without a difference, except for the
    enterprise and zone kinds when no row of theirs was made (``land`` false: a first load of
    supply records or projects), which are then unchanged."""
    if whole:
        some = {ALL} if land else set()
        return Changes(
            links={ALL}, enterprise_parcel=set(some), parcel_links={ALL}, zone_links=set(some),
            land_links=set(some),
        )  # fmt: skip
    rows = conn.exec_driver_sql(
        f"""
        WITH d AS ((SELECT {_LINK_COLS} FROM _lk_new EXCEPT ALL SELECT {_LINK_COLS} FROM _lk_old)
                   UNION ALL
                   (SELECT {_LINK_COLS} FROM _lk_old EXCEPT ALL SELECT {_LINK_COLS} FROM _lk_new))
        SELECT DISTINCT kind, from_key, to_key FROM d
        """
    ).all()
    out = Changes(
        links=set(), enterprise_parcel=set(), parcel_links=set(), zone_links=set(),
        land_links=set(),
    )  # fmt: skip
    for kind, f, t in rows:
        out.add("links", [k for k in (f, t) if k is not None])
        if kind in ZONE_KINDS or kind == "enterprise_parcel":
            out.add("land_links", [k for k in (f, t) if k is not None])
        if kind in ENTERPRISE_KINDS and f is not None:
            out.add("enterprise_parcel", [f])
        if kind.startswith("parcel_") and f is not None:
            out.add("parcel_links", [f])
        if kind in ("supply_parcel", "enterprise_parcel", "project_parcel") and t is not None:
            out.add("parcel_links", [t])
        if kind in ZONE_KINDS and kind.startswith("parcel_") and t is not None:
            out.add("zone_links", [f"{kind.split('_', 1)[1]}:{t}"])
    return out


# --------------------------------------------------------------------------------------------
# The rules (each inserts into _lk_new / _lk_new2 the rows of the keys bound, NULL: all)
# --------------------------------------------------------------------------------------------


def _enterprise_parcel(conn: Connection, p: dict) -> None:
    rule = f"§1 DKBH > contains (smallest) > nearest <= {p['near']:g} m"
    run_sql(
        conn,
        f"""
            CREATE TEMP TABLE _ent ON COMMIT DROP AS
            SELECT uscc, parcel_nos, geom FROM enterprises e WHERE {_in("e.uscc", "e")};
            CREATE TEMP TABLE _keyed ON COMMIT DROP AS
            SELECT DISTINCT e.uscc, pa.parcel_no
            FROM _ent e CROSS JOIN LATERAL unnest(e.parcel_nos) k(no)
            JOIN parcels pa ON pa.parcel_no = k.no;
            CREATE TEMP TABLE _contained ON COMMIT DROP AS
            SELECT DISTINCT ON (e.uscc) e.uscc, pa.parcel_no
            FROM _ent e
            JOIN parcels pa ON pa.geom && e.geom AND ST_Covers(pa.geom, e.geom)
            WHERE NOT EXISTS (SELECT 1 FROM _keyed k WHERE k.uscc = e.uscc)
            ORDER BY e.uscc, pa.area_m2, pa.parcel_no;
            CREATE TEMP TABLE _nearest ON COMMIT DROP AS
            SELECT e.uscc, n.parcel_no, n.d
            FROM _ent e
            CROSS JOIN LATERAL (
                SELECT pa.parcel_no, round(ST_Distance(pa.geom, e.geom)::numeric, 2) AS d
                FROM parcels pa
                WHERE ST_DWithin(pa.geom, e.geom, :near)
                ORDER BY 2, pa.parcel_no LIMIT 1
            ) n
            WHERE e.geom IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM _keyed k WHERE k.uscc = e.uscc)
              AND NOT EXISTS (SELECT 1 FROM _contained c WHERE c.uscc = e.uscc);
            INSERT INTO _lk_new ({_COLS})
            SELECT 'enterprise_parcel', uscc, parcel_no, 'key', NULL::float8, NULL::float8, true,
                   NULL::text, :rule, :run, :as_of FROM _keyed
            UNION ALL
            SELECT 'enterprise_parcel', uscc, parcel_no, 'contains', 0, NULL, true, NULL,
                   :rule, :run, :as_of FROM _contained
            UNION ALL
            SELECT 'enterprise_parcel', uscc, parcel_no, 'nearest', d, NULL,
                   true, NULL, :rule, :run, :as_of FROM _nearest;
            INSERT INTO _lk_new ({_COLS})
            SELECT 'enterprise_parcel', e.uscc, NULL, NULL, NULL, NULL, true,
                   concat_ws('; ',
                       CASE WHEN cardinality(e.parcel_nos) > 0 THEN 'DKBH '
                            || array_to_string(e.parcel_nos, ';') || ' names no parcel' END,
                       CASE WHEN e.geom IS NULL
                            THEN 'no DKBH parcel and no coordinates (X, Y) to match'
                            ELSE 'its point lies in no parcel and no parcel is within '
                                 || :near || ' m'
                                 || coalesce(' (nearest ' || round(f.d) || ' m away)', '')
                       END),
                   :rule, :run, :as_of
            FROM _ent e
            LEFT JOIN LATERAL (
                SELECT ST_Distance(pa.geom, e.geom) AS d FROM parcels pa
                WHERE e.geom IS NOT NULL ORDER BY pa.geom <-> e.geom LIMIT 1
            ) f ON true
            WHERE NOT EXISTS (SELECT 1 FROM _keyed k WHERE k.uscc = e.uscc)
              AND NOT EXISTS (SELECT 1 FROM _contained c WHERE c.uscc = e.uscc)
              AND NOT EXISTS (SELECT 1 FROM _nearest n WHERE n.uscc = e.uscc);
            DROP TABLE _ent, _keyed, _contained, _nearest;
            """,
        {**p, "rule": rule},
    )


def _supply_parcel(conn: Connection, p: dict) -> None:
    """The supply record of each parcel bound (``:pa``), or its row with the reason."""
    rule = f"§1 DZJGH > overlap >= {p['sov']:.0%} of parcel"
    run_sql(
        conn,
        f"""
            CREATE TEMP TABLE _par ON COMMIT DROP AS
            SELECT parcel_no, supply_no, area_m2, geom FROM parcels pa
            WHERE {_in("pa.parcel_no", "pa")};
            CREATE TEMP TABLE _sp ON COMMIT DROP AS
            SELECT s.supply_no, pa.parcel_no, 'key' AS method, NULL::float8 AS share
            FROM _par pa JOIN supplies s ON s.supply_no = pa.supply_no;
            CREATE TEMP TABLE _spo ON COMMIT DROP AS
            SELECT DISTINCT ON (pa.parcel_no) pa.parcel_no, s.supply_no,
                   ({_ov("s.geom", "pa.geom", "pa.area_m2")}) / pa.area_m2 AS share
            FROM _par pa
            JOIN supplies s ON s.geom && pa.geom AND ST_Intersects(s.geom, pa.geom)
            WHERE NOT EXISTS (SELECT 1 FROM supplies x WHERE x.supply_no = pa.supply_no)
            ORDER BY pa.parcel_no, 3 DESC, s.supply_no;
            INSERT INTO _sp SELECT supply_no, parcel_no, 'overlap', share FROM _spo
            WHERE share >= :sov;
            INSERT INTO _lk_new ({_COLS})
            SELECT 'supply_parcel', supply_no, parcel_no, method, NULL, round(share::numeric, 4),
                   true, NULL, :rule, :run, :as_of FROM _sp;
            INSERT INTO _lk_new ({_COLS})
            SELECT 'supply_parcel', NULL, pa.parcel_no, NULL, NULL, NULL, true,
                   CASE WHEN pa.supply_no IS NOT NULL
                        THEN 'DZJGH ' || pa.supply_no || ' is not in the supply records (GD)'
                        ELSE 'no DZJGH, and no supply record covers '
                             || round(:sov * 100) || ' % of it'
                             || coalesce(' (largest overlap ' || o.supply_no || ': '
                                || round(o.share::numeric * 100, 1) || ' %)', '')
                   END,
                   :rule, :run, :as_of
            FROM _par pa LEFT JOIN _spo o ON o.parcel_no = pa.parcel_no
            WHERE NOT EXISTS (SELECT 1 FROM _sp x WHERE x.parcel_no = pa.parcel_no);
            DROP TABLE _par, _sp, _spo;
            """,
        {**p, "rule": rule},
    )


def _supply_unlinked(conn: Connection, p: dict) -> None:
    """A row for each supply record bound (``:s``) that no parcel is linked to now."""
    rule = f"§1 DZJGH > overlap >= {p['sov']:.0%} of parcel"
    conn.execute(
        text(
            f"""
            INSERT INTO _lk_new2 ({_COLS})
            SELECT 'supply_parcel', s.supply_no, NULL, NULL, NULL, NULL, true,
                   'no parcel names this DZJGH or lies ' || round(:sov * 100)
                   || ' % within it (not yet surveyed?)', :rule, :run, :as_of
            FROM supplies s
            WHERE {_in("s.supply_no", "s")}
              AND NOT EXISTS (SELECT 1 FROM links x WHERE x.kind = 'supply_parcel'
                              AND x.from_key = s.supply_no AND x.to_key IS NOT NULL)
            """
        ),
        {**p, "rule": rule},
    )


def _projects(conn: Connection, p: dict) -> None:
    for kind, table, col, label in (
        ("project_supply", "supplies", "supply_no", "DZJGH"),
        ("project_parcel", "parcels", "parcel_no", "DKBH"),
    ):
        rule = f"§1 {label} > overlap >= {p['pov']:.0%} of project"
        run_sql(
            conn,
            f"""
                CREATE TEMP TABLE _prj ON COMMIT DROP AS
                SELECT project_code, {col}, area_m2, geom FROM projects x
                WHERE {_in("x.project_code", "j")};
                CREATE TEMP TABLE _pk ON COMMIT DROP AS
                SELECT x.project_code, t.{col} AS to_key, 'key' AS method,
                       NULL::float8 AS share
                FROM _prj x JOIN {table} t ON t.{col} = x.{col};
                CREATE TEMP TABLE _po ON COMMIT DROP AS
                SELECT DISTINCT ON (x.project_code) x.project_code, t.{col} AS to_key,
                       ({_ov("t.geom", "x.geom", "x.area_m2")}) / x.area_m2 AS share
                FROM _prj x
                JOIN {table} t ON t.geom && x.geom AND ST_Intersects(t.geom, x.geom)
                WHERE x.geom IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM _pk k WHERE k.project_code = x.project_code)
                ORDER BY x.project_code, 3 DESC, t.{col};
                INSERT INTO _lk_new ({_COLS})
                SELECT :kind, project_code, to_key, method, NULL::float8, share, true, NULL::text,
                       :rule, :run, :as_of FROM _pk
                UNION ALL
                SELECT :kind, project_code, to_key, 'overlap', NULL,
                       round(share::numeric, 4), true, NULL, :rule, :run, :as_of
                FROM _po WHERE share >= :pov;
                INSERT INTO _lk_new ({_COLS})
                SELECT :kind, x.project_code, NULL, NULL, NULL, NULL, true,
                       concat_ws('; ',
                           CASE WHEN x.{col} IS NOT NULL THEN '{label} ' || x.{col}
                                || ' is not in {table}' END,
                           CASE WHEN x.geom IS NULL THEN 'no {label} and no polygon'
                                WHEN o.share IS NULL THEN 'its polygon overlaps no {table[:-1]}'
                                ELSE 'largest overlap ' || o.to_key || ' covers '
                                     || round(o.share::numeric * 100, 1) || ' % of it, under '
                                     || round(:pov * 100) || ' %' END),
                       :rule, :run, :as_of
                FROM _prj x LEFT JOIN _po o ON o.project_code = x.project_code
                WHERE NOT EXISTS (SELECT 1 FROM _pk k WHERE k.project_code = x.project_code)
                  AND NOT (o.share IS NOT NULL AND o.share >= :pov);
                DROP TABLE _prj, _pk, _po;
                """,
            {**p, "rule": rule, "kind": kind},
        )


def _parcel_zone(conn: Connection, p: dict, level: str, table: str) -> None:
    """The zones of one level of each parcel bound (``:zp``)."""
    rule = "§1 area share, largest primary"
    run_sql(
        conn,
        f"""
            CREATE TEMP TABLE _pz1 ON COMMIT DROP AS
            SELECT parcel_no, code, round(share::numeric, 6) AS share,
                   row_number() OVER (PARTITION BY parcel_no ORDER BY share DESC, code) = 1
                       AS is_primary
            FROM (
                SELECT pa.parcel_no, z.code,
                       ({_ov("z.geom", "pa.geom", "pa.area_m2")}) / pa.area_m2 AS share
                FROM parcels pa
                JOIN {table} z ON z.geom && pa.geom AND ST_Intersects(z.geom, pa.geom)
                WHERE {_in("pa.parcel_no", "zp")}
                OFFSET 0  -- each overlap computed once (not again for the filter and the sort)
            ) s
            WHERE share > 0;
            INSERT INTO _lk_new ({_COLS})
            SELECT :kind, parcel_no, code, 'overlap', NULL, share, is_primary,
                   NULL, :rule, :run, :as_of
            FROM _pz1;
            INSERT INTO _lk_new ({_COLS})
            SELECT :kind, pa.parcel_no, NULL, NULL, NULL, NULL, true,
                   'lies outside every {level}', :rule, :run, :as_of
            FROM parcels pa
            WHERE {_in("pa.parcel_no", "zp")}
              AND NOT EXISTS (SELECT 1 FROM _pz1 l WHERE l.parcel_no = pa.parcel_no);
            DROP TABLE _pz1;
            """,
        {**p, "rule": rule, "kind": f"parcel_{level}", "level": level},
    )


def _enterprise_zone(conn: Connection, p: dict, level: str, table: str, has_ep: bool) -> None:
    """The zones of one level of each enterprise bound (``:e``): the share of its parcels' area
    in each zone (its parcels and their zone shares read from ``links``), else its point's.
    Their parcels are read into ``_ep`` unless ``has_ep`` (made for the same enterprises at
    another level; the caller drops it)."""
    rule = "§1 parcel area share > point"
    ep = f"""
            DROP TABLE IF EXISTS _ep;
            CREATE TEMP TABLE _ep ON COMMIT DROP AS
            SELECT l.from_key AS uscc, l.to_key AS parcel_no, pa.area_m2 AS parcel_m2
            FROM links l JOIN parcels pa ON pa.parcel_no = l.to_key
            WHERE l.kind = 'enterprise_parcel' AND {_in("l.from_key", "e")};"""
    run_sql(
        conn,
        f"""{"" if has_ep else ep}
            CREATE TEMP TABLE _ez1 ON COMMIT DROP AS
            SELECT uscc, code, 'overlap' AS method, round((m2 / total)::numeric, 6) AS share,
                   row_number() OVER (PARTITION BY uscc ORDER BY m2 DESC, code) = 1 AS is_primary
            FROM (
                WITH tot AS (SELECT uscc, sum(parcel_m2) AS total FROM _ep GROUP BY uscc)
                SELECT ep.uscc, z.to_key AS code, sum(ep.parcel_m2 * z.share) AS m2,
                       min(tot.total) AS total
                FROM _ep ep JOIN tot USING (uscc)
                JOIN links z ON z.kind = :pkind AND z.from_key = ep.parcel_no
                    AND z.to_key IS NOT NULL
                GROUP BY ep.uscc, z.to_key
            ) s
            WHERE m2 > 0;
            INSERT INTO _ez1
            SELECT DISTINCT ON (e.uscc) e.uscc, z.code, 'contains', 1.0, true
            FROM enterprises e
            JOIN {table} z ON z.geom && e.geom AND ST_Covers(z.geom, e.geom)
            WHERE {_in("e.uscc", "e")}
              AND NOT EXISTS (SELECT 1 FROM _ep l WHERE l.uscc = e.uscc)
            ORDER BY e.uscc, z.code;
            INSERT INTO _lk_new2 ({_COLS})
            SELECT :kind, uscc, code, method, NULL, share, is_primary, NULL, :rule, :run, :as_of
            FROM _ez1;
            INSERT INTO _lk_new2 ({_COLS})
            SELECT :kind, e.uscc, NULL, NULL, NULL, NULL, true,
                   CASE WHEN e.geom IS NULL AND ep.uscc IS NULL
                        THEN 'no parcel and no point to place it'
                        ELSE 'its parcels and point lie outside every {level}' END,
                   :rule, :run, :as_of
            FROM enterprises e
            -- (joined: as a NOT EXISTS inside the CASE it was a subplan scanning _ep once for
            -- each enterprise, 2 minutes a level in a first load of the scale-20 city)
            LEFT JOIN (SELECT DISTINCT uscc FROM _ep) ep ON ep.uscc = e.uscc
            WHERE {_in("e.uscc", "e")}
              AND NOT EXISTS (SELECT 1 FROM _ez1 x WHERE x.uscc = e.uscc);
            DROP TABLE _ez1;
            """,
        {**p, "rule": rule, "kind": f"enterprise_{level}", "pkind": f"parcel_{level}"},
    )


PRODUCERS = (
    Producer(
        "linkage",
        reads=(
            "enterprises",
            "parcels",
            "supplies",
            "projects",
            "districts",
            "platforms",
            "corridors",
        ),
        writes=("links",),
        run=_produce,
        doc="§1 links: enterprise, supply and project to parcel; parcel and enterprise to zones",
    ),
)

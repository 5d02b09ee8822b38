"""bench/refresh_profile: what one-row changes cost inside the graph refresh, per producer.

    .venv/bin/python bench/refresh_profile.py --database landlink_bench_realtime [--repeat 3]
        [--statements 12] [cc qy dk gd retire]

On a database already loaded and analysed (e.g. the one bench/realtime.py leaves behind, or any
city loaded with `landlink import-dir` and `landlink analyse-all`), each change is made in a
transaction, refreshed by its keys (`graph.refresh`), timed, and ROLLED BACK: the database is
left as it was. A different row is changed in each repetition.

- cc: one enterprise-year's SJSJ (tax) + 1;
- qy: an enterprise with output moved onto the point-on-surface of another parcel;
- dk: one parcel's geometry moved 1 m east;
- gd: one unstarted supply record's agreed start (HTKGSJ) moved 30 days;
- retire: one enterprise with output retired (`retire_keys`, as `landlink retire qy KEY`).

Prints the refresh's wall time, each producer's seconds and what it changed; with
``--statements N``, the N slowest SQL statements of each change. No process start, file reading
or HTTP: bench/realtime.py measures those end to end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from gis.core import graph  # noqa: E402
from gis.core.config import Settings  # noqa: E402
from gis.core.graph import Changes  # noqa: E402

KINDS = ("cc", "qy", "dk", "gd", "retire")


def _change(c, kind: str, i: int) -> Changes:
    """Make change ``kind`` number ``i`` in ``c``'s transaction; the keys it changed."""
    if kind == "cc":
        u, y = c.execute(
            text(
                "SELECT uscc, year FROM outputs WHERE tax_paid IS NOT NULL "
                "ORDER BY uscc DESC, year DESC LIMIT 1 OFFSET :o"
            ),
            {"o": 100 + i},
        ).one()
        c.execute(
            text("UPDATE outputs SET tax_paid = tax_paid + 1 WHERE uscc = :u AND year = :y"),
            {"u": u, "y": y},
        )
        return Changes(outputs={f"{u}:{y}"})
    if kind == "qy":
        u = c.execute(
            text(
                "SELECT uscc FROM enterprises e WHERE geom IS NOT NULL AND EXISTS "
                "(SELECT 1 FROM outputs o WHERE o.uscc = e.uscc) ORDER BY uscc LIMIT 1 OFFSET :o"
            ),
            {"o": 200 + i},
        ).scalar_one()
        c.execute(
            text(
                "UPDATE enterprises SET geom = (SELECT ST_PointOnSurface(geom) FROM parcels "
                "ORDER BY parcel_no OFFSET :o LIMIT 1) WHERE uscc = :u"
            ),
            {"u": u, "o": 30000 + 997 * i},
        )
        return Changes(enterprises={u})
    if kind == "dk":
        p = c.execute(
            text("SELECT parcel_no FROM parcels ORDER BY parcel_no OFFSET :o LIMIT 1"),
            {"o": 5000 + i},
        ).scalar_one()
        c.execute(
            text("UPDATE parcels SET geom = ST_Translate(geom, 1, 0) WHERE parcel_no = :p"),
            {"p": p},
        )
        return Changes(parcels={p})
    if kind == "gd":
        s = c.execute(
            text(
                "SELECT supply_no FROM supplies WHERE actual_start IS NULL "
                "ORDER BY supply_no OFFSET :o LIMIT 1"
            ),
            {"o": 100 + i},
        ).scalar_one()
        c.execute(
            text("UPDATE supplies SET agreed_start = agreed_start + 30 WHERE supply_no = :s"),
            {"s": s},
        )
        return Changes(supplies={s})
    from gis.core.layers import layer
    from gis.ingest.retire import retire_keys

    u = c.execute(
        text(
            "SELECT uscc FROM enterprises e WHERE EXISTS (SELECT 1 FROM outputs o "
            "WHERE o.uscc = e.uscc) ORDER BY uscc DESC LIMIT 1 OFFSET :o"
        ),
        {"o": 300 + i},
    ).scalar_one()
    return retire_keys(c, layer("qy"), [(u,)], "bench", "bench")[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kinds", nargs="*", help=f"changes to make: {' '.join(KINDS)} (default all)")
    ap.add_argument("--database", default="landlink_bench_realtime")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--statements", type=int, default=0, help="show the N slowest statements")
    ns = ap.parse_args()
    unknown = set(ns.kinds) - set(KINDS)
    if unknown:
        ap.error(f"unknown change {', '.join(sorted(unknown))}: choose from {' '.join(KINDS)}")
    url = make_url(Settings().sqlalchemy_url).set(database=ns.database)
    engine = create_engine(url)
    stats: list[tuple[float, str]] = []

    @event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(sqlalchemy.engine.Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        stats.append((time.perf_counter() - conn.info["t0"], " ".join(statement.split())[:150]))

    for kind in ns.kinds or KINDS:
        for i in range(ns.repeat):
            with engine.connect() as c:
                tx = c.begin()
                changes = _change(c, kind, i)
                stats.clear()
                t = time.perf_counter()
                ctx = graph.refresh(c, changes, trigger="bench")
                seconds = time.perf_counter() - t
                tx.rollback()
            timings = " ".join(f"{k} {v:.3f}" for k, v in ctx.timings.items())
            print(f"{kind:7}{seconds:7.2f} s  {timings}", flush=True)
            print(f"{'':7}changed {json.dumps(ctx.changed, default=str)[:300]}")
            if "evaluation_group_years" in ctx.counts:
                print(f"{'':7}evaluation group-years {ctx.counts['evaluation_group_years']}")
            for s, stmt in sorted(stats, reverse=True)[: ns.statements]:
                print(f"{'':9}{s:7.3f}  {stmt}")


if __name__ == "__main__":
    main()

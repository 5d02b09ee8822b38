"""bench/evaluation_reads: what reading the evaluation costs (ranks are computed when read).

    .venv/bin/python bench/evaluation_reads.py DATABASE

On a database already loaded and analysed (e.g. one bench/realtime.py leaves behind), times five
calls each of the readers behind ``GET /api/evaluations`` (the first page of the latest year, of
all groups and of one), ``GET /api/enterprises`` (the first page) and an enterprise's dossier,
and prints the median and the fastest. No HTTP: the readers' own time.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from gis.core.config import Settings  # noqa: E402
from gis.economy import evaluation_read as er  # noqa: E402

e = create_engine(make_url(Settings().sqlalchemy_url).set(database=sys.argv[1]))
with e.connect() as c:
    u = c.execute(
        text("SELECT uscc FROM evaluation_ranking WHERE graded ORDER BY uscc LIMIT 1 OFFSET 500")
    ).scalar()
    cases = {
        "GET /api/evaluations (latest year, first 50)": lambda: er.evaluations(
            c, None, None, True, None, 50, 0
        ),
        "... group above, first 50": lambda: er.evaluations(c, None, "above", True, None, 50, 0),
        "GET /api/enterprises (first 50)": lambda: er.enterprises(c, True, limit=50),
        "one enterprise's dossier": lambda: er.dossier(c, u, True),
    }
    for name, f in cases.items():
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        print(f"{name}: median {statistics.median(ts):.3f} s (min {min(ts):.3f})")

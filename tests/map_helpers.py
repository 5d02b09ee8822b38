"""The sample city loaded into the test database, for the map page's API and browser tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parents[1]


def landlink(*args: str, check: bool = True) -> str:
    """Run the CLI as a user does, against the test database (DATABASE_URL)."""
    exe = Path(sys.executable).with_name("landlink")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "app.cli", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=900)
    if check:
        assert r.returncode == 0, f"landlink {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    elif r.returncode:
        print(f"[map] landlink {' '.join(args)} failed (the page works without it):\n{r.stderr}")
    return r.stdout


def load_sample_city(engine: Engine, out: Path, analyses: bool = True) -> dict:
    """Empty every table, write the sample city (gis.sample.city, default seed: the same as
    sample_shapefiles/) into ``out``, import it, run the analyses ``make demo`` runs (when
    ``analyses``) and detection as of the sample's reference date (the latest run, which the
    page shows). Returns planted.json."""
    from gis.sample.city import generate

    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename "
                    "NOT IN ('spatial_ref_sys', 'alembic_version')"
                )
            )
        ]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    shutil.rmtree(out, ignore_errors=True)
    generate(out)
    planted = json.loads((out / "planted.json").read_text(encoding="utf-8"))
    landlink("import-dir", str(out))
    if analyses:
        # linkage, evaluation, three lands, platform kinds, plan: as `make demo` runs them
        landlink("analyse-all", "--as-of", planted["reference_date"])
    else:
        landlink("detect", "--as-of", planted["reference_date"])
    return planted

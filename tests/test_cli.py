"""The `landlink` command as a user runs it (a real subprocess against the test database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from gis.core import tokens
from tests.conftest import TEST_URL, snapshot
from tests.factories import box, districts, parcels, supplies, write_shp

LANDLINK = str(Path(sys.executable).parent / "landlink")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LANDLINK, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DATABASE_URL": TEST_URL},
    )


def test_token_create_prints_the_token_alone_on_the_last_line(db):
    r = run("token", "create", "--role", "analyst")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("ll_") and " " not in last
    with db.connect() as c:
        assert tokens.lookup(c, last) == ("analyst", "analyst")


def test_import_reports_and_refuses_bad_rows(db, tmp_path):
    assert run("import", "xzq", str(districts(tmp_path))).returncode == 0
    bad = supplies(tmp_path, 3, SRRDM=["9133", None, None])
    before = snapshot(db)
    r = run("import", "gd", str(bad), "--report", str(tmp_path / "r.json"))
    assert r.returncode == 1
    assert "ERROR GD.shp feature 0 [3301022019B00000] field SRRDM" in r.stdout
    assert "nothing was imported" in r.stderr
    assert snapshot(db) == before
    assert "USCC must have 18 characters" in (tmp_path / "r.json").read_text()
    r = run("import", "gd", str(bad), "--lenient")
    assert r.returncode == 0 and "inserted 2" in r.stdout and "rejected 1" in r.stdout


def test_unknown_layer_and_missing_file_are_clear(db, tmp_path):
    r = run("import", "zz", str(tmp_path / "x.shp"))
    assert r.returncode == 2 and "unknown layer 'zz'" in r.stderr
    r = run("import", "dk", str(tmp_path / "nope.shp"))
    assert r.returncode == 1 and "no such file" in r.stderr


def test_import_dir_uses_dependency_order_and_manifest(db, tmp_path):
    d = tmp_path / "city"
    d.mkdir()
    parcels(d, 2, name="dk.shp")  # lower-case name: matched case-insensitively
    supplies(d, 2)
    districts(d)
    write_shp(d / "ZL.shp", [{"ZLDM": "CXKC", "ZLMC": "城西科创大走廊"}], [box(0)], cpg=False)
    pd.DataFrame({"XZQDM": ["330102"], "ND": [2024], "GDP": [100.0]}).to_csv(
        d / "TJ.csv", index=False, encoding="gbk"
    )
    (d / "manifest.toml").write_text('[ZL]\nencoding = "GBK"\n', encoding="utf-8")
    r = run("import-dir", str(d))
    assert r.returncode == 0, r.stdout + r.stderr
    order = [line.split()[0] for line in r.stdout.splitlines()[1:6]]
    assert order == ["XZQ", "ZL", "GD", "DK", "TJ"]
    assert "5 of 5 files imported" in r.stdout
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM parcels")).scalar() == 2
        opts = c.execute(text("SELECT options FROM import_batches WHERE layer='ZL'")).scalar()
    assert opts == {"encoding": "GBK", "strict": True}
    # again: nothing changes
    r = run("import-dir", str(d))
    assert "5 of 5 files imported" in r.stdout
    assert all(line.split()[3] == "0" for line in r.stdout.splitlines()[1:6])


def test_a_database_url_that_is_no_url_is_named(tmp_path):
    r = subprocess.run(
        [LANDLINK, "import", "cc", str(tmp_path / "CC.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATABASE_URL": "None"},
    )
    assert r.returncode == 1
    assert r.stderr.startswith("ERROR DATABASE_URL is not a database URL"), r.stderr
    assert "Traceback" not in r.stderr


def test_a_command_on_an_unmigrated_database_says_to_migrate(engine):
    """`landlink token list` against an empty database: one line saying to run
    'landlink migrate', exit 1, no traceback."""
    import os
    import subprocess
    import sys

    from sqlalchemy import text as sql

    from tests.conftest import _admin_engine, _admin_url

    name = f"{engine.url.database}_empty"
    admin = _admin_engine()
    with admin.connect() as c:
        c.execute(sql(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(sql(f'CREATE DATABASE "{name}"'))
    try:
        url = _admin_url.set(database=name).render_as_string(hide_password=False)
        r = subprocess.run(
            [sys.executable, "-m", "app.cli", "token", "list"],
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 1, r.stdout + r.stderr
        assert "landlink migrate" in r.stderr and "Traceback" not in r.stderr
    finally:
        with admin.connect() as c:
            c.execute(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# What a geometry or the web needs: a table layer's import (and the derivation graph refreshed
# after it) loads none of them, nor the table definitions with GeoAlchemy2.
NOT_FOR_A_TABLE_IMPORT = (
    "fastapi",
    "geoalchemy2",
    "geopandas",
    "httpx",
    "jinja2",
    "openpyxl",
    "pyogrio",
    "pyproj",
    "shapely",
    "starlette",
    "uvicorn",
)


def run_importtime(*args: str) -> subprocess.CompletedProcess:
    """``landlink ARGS`` under ``python -X importtime`` (the modules it imports on stderr)."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DATABASE_URL": TEST_URL},
    )


def _imported(r: subprocess.CompletedProcess) -> set[str]:
    """The modules a ``python -X importtime`` run imported (from its stderr)."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in r.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def test_a_table_import_loads_no_geometry_or_web_library(db, tmp_path):
    assert run("import", "xzq", str(districts(tmp_path))).returncode == 0
    tj = tmp_path / "TJ.csv"
    pd.DataFrame({"XZQDM": ["330102"], "ND": [2024], "GDP": [100.0]}).to_csv(tj, index=False)
    r = run_importtime("import", "tj", str(tj))
    assert r.returncode == 0 and "inserted 1" in r.stdout, r.stdout + r.stderr[-2000:]
    imported = _imported(r)
    assert "pandas" in imported and "gis.core.graph" in imported  # the parse saw the run
    assert sorted(imported & set(NOT_FOR_A_TABLE_IMPORT)) == []


def test_a_one_row_spatial_change_loads_no_model_or_web_library(db, tmp_path):
    """A supply record's agreed start changed by the command line: its refresh judges the
    three lands again (one-row changes by the command line are timed end to end) without
    importing the ORM models' GeoAlchemy2 (0.07 s) or any web library."""
    assert run("import", "xzq", str(districts(tmp_path))).returncode == 0
    assert run("import", "gd", str(supplies(tmp_path, 3))).returncode == 0
    later = supplies(tmp_path, 3, "GD2.shp", HTKGSJ=["2019-09-01", "2019-10-01", "2019-09-01"])
    r = run_importtime("import", "gd", str(later))
    assert r.returncode == 0 and "updated 1" in r.stdout, r.stdout + r.stderr[-2000:]
    assert "three_lands" in r.stdout  # the refresh judged them
    imported = _imported(r)
    assert "gis.lands.idle_land" in imported  # the detectors ran
    web = {"fastapi", "geoalchemy2", "httpx", "jinja2", "starlette", "uvicorn"}
    assert sorted(imported & web) == []


def test_help_loads_no_settings_database_or_data_library():
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "app.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "import-dir" in r.stdout
    assert sorted(_imported(r) & {"numpy", "pandas", "pydantic", "sqlalchemy", "psycopg"}) == []


def test_verify_derived_agrees_on_an_analysed_city_and_names_a_table_changed_by_hand(
    analysed_sample,
):
    """``landlink verify-derived`` exits 0 when the derived tables equal a recompute from
    scratch, and 1 naming the table when one does not (here: a per-mu figure edited by hand, as
    a bug in a refresh by keys would leave it); the recompute itself changes nothing."""
    from tests.conftest import database_copy, sample_as_of

    with database_copy(analysed_sample, "verify") as url:

        def verify(*extra: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [LANDLINK, "verify-derived", "--as-of", str(sample_as_of()), *extra],
                capture_output=True,
                text=True,
                timeout=600,
                env={**os.environ, "DATABASE_URL": url},
            )

        ok = verify("--table", "per_mu", "--table", "zone_sums")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "the 2 derived tables agree" in ok.stdout
        from sqlalchemy import create_engine

        eng = create_engine(url)
        with eng.begin() as c:
            code = c.execute(
                text(
                    "UPDATE per_mu SET tax_paid = tax_paid + 1 WHERE (level, code, year) = "
                    "(SELECT level, code, year FROM per_mu WHERE level = 'district' "
                    "AND tax_paid IS NOT NULL ORDER BY code, year LIMIT 1) RETURNING code"
                )
            ).scalar_one()
        bad = verify("--table", "per_mu", "--table", "zone_sums")
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "per_mu: " in bad.stdout and "1 only as they stand" in bad.stdout
        assert "zone_sums" not in bad.stdout.split("derived tables differ")[0]
        assert code in bad.stdout
        eng.dispose()
        # the check changed nothing: the edit is still there
        assert verify("--table", "per_mu").returncode == 1
        wrong = verify("--table", "parcels")
        assert wrong.returncode == 2 and "not a derived table" in wrong.stderr


@pytest.mark.parametrize(
    "error,hint",
    [
        ("NumericValueOutOfRange", "(SQLSTATE 22003): the server's message. Its transaction"),
        ("UndefinedColumn", "(SQLSTATE 42703): the server's message. If this landlink was"),
        ("UndefinedTable", "has no landlink tables yet"),
        ("AdminShutdown", "cannot reach the database"),
        ("OperationalError", "cannot reach the database"),  # no SQLSTATE: the connection
    ],
)
def test_a_database_error_is_one_line_with_the_hint_that_fits(monkeypatch, capsys, error, hint):
    """An error the database raises on the driver's own cursor (not wrapped by SQLAlchemy) is
    one line, not a traceback, told apart as a wrapped one is: a lost connection, no tables,
    and the hint to migrate for schema errors only (a value out of range is no upgrade's
    fault)."""
    import psycopg

    from app import cli

    def fail(ns) -> int:  # noqa: ANN001
        cls = getattr(psycopg.errors, error, None) or getattr(psycopg, error)
        raise cls("the server's message\nDETAIL: more")

    monkeypatch.setattr(cli, "cmd_refresh", fail)
    assert cli.main(["refresh"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the server's message" in err and hint in err, err


def test_the_analysis_commands_run_with_and_without_a_date(db, tmp_path):
    """Each analysis command on a small city, as a user types it: it ends with 0 and a summary,
    never a traceback (``landlink link`` once read an option only ``evaluate`` defined)."""
    for layer, path in (("xzq", districts), ("gd", supplies), ("dk", parcels)):
        f = path(tmp_path) if layer == "xzq" else path(tmp_path, 2)
        assert run("import", layer, str(f)).returncode == 0, layer
    for args in (
        ("link",),
        ("link", "--as-of", "2025-12-31"),
        ("evaluate",),
        ("evaluate", "--as-of", "2025-12-31"),
        ("detect", "--as-of", "2025-12-31"),
        ("refresh",),
    ):
        r = run(*args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stdout + r.stderr)
        assert r.stdout.strip(), args


def test_import_dir_names_the_file_a_database_error_stopped(db, tmp_path):
    """A file whose import the database refuses (here a trigger raising on supply records): the
    command names that file, prints what it loaded before it, and the file wrote nothing."""
    d = tmp_path / "city"
    d.mkdir()
    districts(d)
    supplies(d, 2)
    parcels(d, 2)
    with db.begin() as c:
        c.execute(
            text(
                "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'refused by a test trigger'; END$$;"
                "CREATE TRIGGER test_refuse BEFORE INSERT ON supplies "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse()"
            )
        )
    try:
        r = run("import-dir", str(d))
    finally:
        with db.begin() as c:
            c.execute(text("DROP TRIGGER test_refuse ON supplies; DROP FUNCTION test_refuse()"))
    assert r.returncode == 1
    assert f"ERROR {d / 'GD.shp'} (GD): not imported, nothing of it written" in r.stderr
    assert "refused by a test trigger" in r.stderr and "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert [x.split()[0] for x in lines[1:-1]] == ["XZQ"]
    assert lines[-1].startswith("1 of 3 files imported") and lines[-1].endswith("stopped at GD")
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM supplies")).scalar() == 0
        assert c.execute(text("SELECT count(*) FROM districts")).scalar() == 2

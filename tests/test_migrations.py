"""Alembic history: one head, a full downgrade and upgrade round trip, and the models match.

Runs on its own scratch database (``<test db>_mig``) on the same server, so the session's
database is untouched.
"""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gis.core.migrate import alembic_config
from tests.conftest import TEST_URL, _admin_engine


def _tables(url: str) -> set[str]:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return {
                r[0]
                for r in c.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename NOT IN ('spatial_ref_sys', 'alembic_version')"
                    )
                )
            }
    finally:
        eng.dispose()


def test_history_has_one_head():
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}"


def test_upgrade_downgrade_round_trip_and_models_match():
    url = make_url(TEST_URL)
    name = f"{url.database}_mig"
    mig_url = url.set(database=name).render_as_string(hide_password=False)
    admin = _admin_engine()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        cfg = alembic_config(mig_url)
        command.upgrade(cfg, "head")
        # the migration left no session behind: a copy of the database (CREATE DATABASE ...
        # TEMPLATE, as the tests make) is refused while another session is connected to it.
        # PostgreSQL waits up to 5 s for sessions that are ending; an idle one never ends.
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}_copy"'))
            c.execute(text(f'CREATE DATABASE "{name}_copy" TEMPLATE "{name}"'))
            c.execute(text(f'DROP DATABASE "{name}_copy"'))
        first = _tables(mig_url)
        assert {"parcels", "enterprises", "import_batches", "evaluation_rows"} <= first

        # the tables the models declare are the tables the migrations make, column for column
        from geoalchemy2 import alembic_helpers

        import gis.core.all_models  # noqa: F401
        from gis.core.models import metadata

        assert len(metadata.tables) > 20  # every module's tables were declared
        eng = create_engine(mig_url)
        try:
            with eng.connect() as c:
                ctx = MigrationContext.configure(
                    c, opts={"include_object": alembic_helpers.include_object}
                )
                diff = [
                    d
                    for d in compare_metadata(ctx, metadata)
                    # only missing / extra tables and columns: type and index spelling differ
                    if isinstance(d, tuple)
                    and d[0] in ("add_table", "remove_table", "add_column", "remove_column")
                ]
        finally:
            eng.dispose()
        assert diff == [], diff

        command.downgrade(cfg, "base")
        assert _tables(mig_url) == set()
        command.upgrade(cfg, "head")
        assert _tables(mig_url) == first
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_layers_say_which_geometry_columns_their_tables_have():
    """The import path reads ``Layer.has_geom`` / ``has_source_crs`` instead of loading the
    table definitions: they agree with the tables."""
    from gis.core.layers import LAYERS
    from gis.core.models import LAYER_TABLES

    for code, layer in LAYERS.items():
        columns = LAYER_TABLES[code].c
        assert layer.has_geom == ("geom" in columns), code
        assert layer.has_source_crs == ("source_crs" in columns), code

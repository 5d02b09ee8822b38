"""Test set-up: a real PostgreSQL + PostGIS, a fresh database per test session, a live server.

Uses the project's local cluster (started here if needed, as the ``postgres`` user when run as
root) or the server in ``DATABASE_URL``. Each session creates ``landlink_test_<pid>``, migrates it
with Alembic, and drops it at the end; each test that asks for ``db`` starts from empty tables.

Under pytest-xdist (``make test``: ``-n 2``) each worker is a session of its own, with its own
databases; only the sample city's import is shared: the first worker to need it imports it once
per run (``<controller's test database>_sample``) and every worker copies that.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gis.core.config import Settings, get_settings

_base = Settings()
if _base.local_cluster:
    from app import localdb

    localdb.up(_base)
_admin_url = make_url(_base.sqlalchemy_url)
TEST_DB = f"landlink_test_{os.getpid()}"
TEST_URL = _admin_url.set(database=TEST_DB).render_as_string(hide_password=False)
os.environ["DATABASE_URL"] = TEST_URL
get_settings.cache_clear()
# The run's name: this process's test database, or under pytest-xdist the controller's (the
# workers inherit its environment), for what the workers share.
RUN_DB = os.environ.setdefault("LANDLINK_TEST_RUN_DB", TEST_DB)
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


# Figures a test measures and prints without asserting them (e.g. the map's first render):
# shown in the terminal summary, which output capture does not swallow.
MEASURED = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[MEASURED] = []
    if RUN_DB == TEST_DB:  # the controller: nothing shared yet (a crashed run's, same pid)
        import shutil

        shutil.rmtree(_shared_folder(), ignore_errors=True)


# The slowest test files, slowest first (the sum of their tests' durations on two workers,
# 2 cores: 120-300 s down to ~70 s). Under pytest-xdist (make test: --dist loadfile
# --no-loadscope-reorder) files go to the workers in collection order, so these go first and the
# short files fill in at the end. test_import_faults (no sample city) is second, so that the
# other worker starts on it while the first imports the sample city both share.
SLOWEST_FIRST = (
    "test_no_server_errors.py",
    "test_import_faults.py",
    "test_incremental_property.py",
    "test_economy_incremental.py",
    "test_retire.py",
    "test_one_linkage.py",
    "test_query_limits.py",
    "test_disclosure.py",
    "test_schemathesis.py",
    "test_three_lands_planted.py",
    "test_tokens.py",
    "test_map_api.py",
    "test_platform_kinds.py",
    "test_import.py",
    "test_tiles.py",
    "test_plan_report.py",
    "e2e/test_map_page.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not XDIST_WORKER:
        return  # one process: the usual order

    def rank(item: pytest.Item) -> int:
        path = item.path.as_posix()
        for i, name in enumerate(SLOWEST_FIRST):
            if path.endswith("/tests/" + name):
                return i
        return len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept


def pytest_sessionfinish(session: pytest.Session) -> None:
    # a pytest-xdist worker hands its measured lines to the controller, which prints them
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["measured"] = session.config.stash.get(MEASURED, [])
    elif RUN_DB == TEST_DB:  # the controller (or a run in one process): what workers shared
        _drop_shared_sample()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # noqa: ANN001
    """pytest-xdist, in the controller: a worker finished; keep the lines it measured."""
    lines = getattr(node, "workeroutput", {}).get("measured", [])
    node.config.stash.setdefault(MEASURED, []).extend(lines)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(MEASURED, [])
    if lines:
        terminalreporter.section("measured, not asserted")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def report_measured(pytestconfig: pytest.Config):
    """``report_measured(line)``: print ``line`` in the run's terminal summary."""
    return pytestconfig.stash[MEASURED].append


def _admin_engine():
    return create_engine(_admin_url.set(database="postgres"), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def engine():
    admin = _admin_engine()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB}"'))
        c.execute(text(f'CREATE DATABASE "{TEST_DB}"'))
    from gis.core.db import get_engine
    from gis.core.migrate import upgrade

    upgrade(TEST_URL)
    eng = get_engine()
    yield eng
    eng.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)'))
    admin.dispose()


def _data_tables(conn) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN "
                "('spatial_ref_sys', 'alembic_version')"
            )
        )
    ]


def empty_tables(conn) -> None:  # noqa: ANN001
    """What ``TRUNCATE <every data table> RESTART IDENTITY CASCADE`` does, truncating only the
    tables that hold rows or have TRUNCATE triggers (a TRUNCATE rebuilds each table's indexes
    and syncs them to disk: tenths of a second for all of them, before each of the ~340 tests
    that ask for ``db``). Every identity restarts first; the triggers (the tiles' invalidation
    log) then write what they write after a TRUNCATE of everything."""
    tables = _data_tables(conn)
    sequences = conn.execute(
        text(
            "SELECT format('%I.%I', n.nspname, s.relname) FROM pg_depend d "
            "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "JOIN pg_namespace n ON n.oid = s.relnamespace "
            "JOIN pg_class t ON t.oid = d.refobjid "
            "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
            "AND d.deptype IN ('a', 'i') AND t.relname = ANY(:tables) "
            "AND t.relnamespace = 'public'::regnamespace"
        ),
        {"tables": tables},
    ).scalars()
    for seq in list(sequences):
        conn.execute(text(f"ALTER SEQUENCE {seq} RESTART"))
    triggered = set(
        conn.execute(
            text(
                "SELECT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
                "WHERE NOT g.tgisinternal AND g.tgtype & 32 <> 0 "  # TRIGGER_TYPE_TRUNCATE
                "AND c.relnamespace = 'public'::regnamespace"
            )
        ).scalars()
    )
    holding = set(
        conn.execute(
            text(" UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT FROM {t})" for t in tables))
        ).scalars()
    )
    truncate = [t for t in tables if t in holding or t in triggered]
    if truncate:
        conn.execute(text(f"TRUNCATE {', '.join(truncate)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db(engine):
    """The engine, with every table emptied first (and every identity restarted)."""
    with engine.begin() as conn:
        empty_tables(conn)
    return engine


def snapshot(engine) -> dict:
    """Row counts and a content checksum of every data table (to prove nothing changed)."""
    out = {}
    with engine.connect() as conn:
        for t in _data_tables(conn):
            # the import log and the access bookkeeping (audit of restricted reads, a token's
            # last use) are written by design on every import or analyst request
            if t in ("import_batches", "import_changes", "audit_log", "api_tokens"):
                continue
            out[t] = conn.execute(
                text(
                    "SELECT count(*), "
                    f"md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) "
                    f"FROM {t} x"
                )
            ).one()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn_thread(app, log_level: str = "warning"):
    """A real uvicorn server on 127.0.0.1 for ``app`` in a thread of this process: its URL."""
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(5)


@contextmanager
def serve_process(
    database_url: str, log: Path | None = None, args: tuple[str, ...] = (), env: dict | None = None
):
    """`landlink serve` as its own process on a free port against ``database_url`` (its
    output to ``log``, else discarded; more options in ``args``, more environment in ``env``):
    its URL once it answers."""
    port = _free_port()
    with open(log or os.devnull, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
            env={**os.environ, "DATABASE_URL": database_url, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(base + "/docs", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def server(engine):
    """A real uvicorn server on 127.0.0.1 serving the app against the test database."""
    from app.main import create_app

    with uvicorn_thread(create_app()) as url:
        yield url


@pytest.fixture
def http(server, db):
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_shapefiles"


def load_directory(engine, directory: Path) -> list[dict]:
    """Import every layer file of a folder as `landlink import-dir` does (manifest included)."""
    import tomllib

    from app.cli import find_layer_files
    from gis.ingest import ImportOptions, import_file

    manifest = {}
    if (directory / "manifest.toml").exists():
        manifest = {
            k.upper(): v
            for k, v in tomllib.loads((directory / "manifest.toml").read_text("utf-8")).items()
        }
    reports = []
    for code, path in find_layer_files(directory):
        o = manifest.get(code, {})
        opts = ImportOptions(encoding=o.get("encoding"), crs=o.get("crs"), sheet=o.get("sheet"))
        reports.append(import_file(engine, code, path, opts))
    return reports


def _import_sample(name: str) -> list[dict]:
    """A new database ``name``, migrated, with sample_shapefiles/ imported: the reports."""
    url = _admin_url.set(database=name).render_as_string(hide_password=False)
    admin = _admin_engine()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    from gis.core.migrate import upgrade

    upgrade(url)
    eng = create_engine(url)
    try:
        return load_directory(eng, SAMPLE_DIR)
    finally:
        eng.dispose()


def _create_from_template(c, name: str, template: str) -> None:  # noqa: ANN001
    """``CREATE DATABASE name TEMPLATE template``, tried again for up to 30 s while another
    session is on the template (PostgreSQL waits 5 s for it to leave). Two CI runs lost 75 and
    96 tests to one: the migration's pooled connection, left idle on the shared sample until
    its engine was collected (migrations/env.py now uses none)."""
    import time

    from sqlalchemy.exc import OperationalError

    for attempt in range(30):
        try:
            c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            return
        except OperationalError as e:
            if getattr(e.orig, "sqlstate", None) != "55006" or attempt == 29:  # object_in_use
                raise
            time.sleep(1)


def _shared_folder() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / f"{RUN_DB}_shared"


def _shared_sample() -> tuple[str, list[dict]]:
    """Under pytest-xdist: the database holding the sample city imported once for the run (by
    the first worker to ask, the others wait for it) and its import reports."""
    import fcntl
    import pickle

    name = f"{RUN_DB}_sample"
    folder = _shared_folder()
    folder.mkdir(exist_ok=True)
    with open(folder / "sample.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes (or the worker dies)
        done = folder / "sample.reports"
        if not done.exists():
            done.write_bytes(pickle.dumps(_import_sample(name)))
        return name, pickle.loads(done.read_bytes())


def _drop_shared_sample() -> None:
    import shutil

    if not _shared_folder().exists():
        return
    admin = _admin_engine()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{RUN_DB}_sample" WITH (FORCE)'))
    admin.dispose()
    shutil.rmtree(_shared_folder(), ignore_errors=True)


@pytest.fixture(scope="session")
def sample_engine(engine):
    """A second database holding the committed sample city, loaded once per session (under
    pytest-xdist: once per run, copied for each worker).

    Read-only for tests: do not import into it or truncate it.
    """
    name = f"{TEST_DB}_sample"
    admin = _admin_engine()
    if XDIST_WORKER:
        shared, reports = _shared_sample()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            _create_from_template(c, name, shared)
    else:
        reports = _import_sample(name)
    eng = create_engine(_admin_url.set(database=name).render_as_string(hide_password=False))
    eng.sample_reports = reports
    yield eng
    eng.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def database_copy(source, suffix: str):
    """The URL of a new database copied from ``source`` (an engine; CREATE DATABASE ... TEMPLATE),
    named ``<source>_<suffix>`` and dropped afterwards: for tests that write to the sample city."""
    name = f"{source.url.database}_{suffix}"
    url = _admin_url.set(database=name).render_as_string(hide_password=False)
    source.dispose()
    admin = _admin_engine()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        _create_from_template(c, name, source.url.database)
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sample_as_of():
    """The sample city's reference date (planted.json): the date its analyses judge by."""
    import json
    from datetime import date

    return date.fromisoformat(
        json.loads((SAMPLE_DIR / "planted.json").read_text("utf-8"))["reference_date"]
    )


@contextmanager
def served_copy(source, suffix: str, log_dir: Path, wanted: dict[str, tuple]):
    """A live `landlink serve` on a copy of ``source`` (``database_copy``) with the tokens
    ``wanted`` ({name: (role, token name, layers or None)}) made in it: (base URL, engine,
    {name: token})."""
    from gis.core import tokens

    with database_copy(source, suffix) as url:
        eng = create_engine(url)
        with eng.begin() as c:
            toks = {
                k: tokens.create(c, role, who, layers=lyr) for k, (role, who, lyr) in wanted.items()
            }
        try:
            with serve_process(url, log_dir / "server.log") as base:
                yield base, eng, toks
        finally:
            eng.dispose()


def bearer(token: str, **more: str) -> dict:
    """Request headers with ``Authorization: Bearer <token>`` (and ``more``)."""
    return {"Authorization": f"Bearer {token}", **more}


@pytest.fixture(scope="session")
def analysed_sample(sample_engine):
    """A copy of the sample city with every derived table computed from scratch as of its
    reference date (``graph.refresh(conn, None, as_of, trigger="test")``, as
    ``landlink analyse-all --full`` does), made once per session: a module that needs an
    analysed city copies it (``database_copy(analysed_sample, ...)``) instead of copying the
    sample and analysing it again. Read-only for tests, as ``sample_engine`` is."""
    from gis.core import graph

    with database_copy(sample_engine, "analysed") as url:
        eng = create_engine(url)
        with eng.begin() as c:
            graph.refresh(c, None, sample_as_of(), trigger="test")
        try:
            yield eng
        finally:
            eng.dispose()


@pytest.fixture(scope="session")
def sample_server(sample_engine, tmp_path_factory):
    """A live `landlink serve` (its own process) on an analysed copy of the sample city, as
    `make demo` serves it: ``(base_url, engine, analyst_token, server_log_path)``.

    The copy (CREATE DATABASE ... TEMPLATE) keeps the analyses out of ``sample_engine``.
    """
    import json
    from datetime import date

    from app.cli import analysis_steps
    from gis.core import tokens

    with database_copy(sample_engine, "served") as url:
        eng = create_engine(url)
        as_of = date.fromisoformat(
            json.loads((SAMPLE_DIR / "planted.json").read_text())["reference_date"]
        )
        for _, step in analysis_steps(as_of):
            step(eng)
        with eng.begin() as c:
            token = tokens.create(c, "analyst", "sample_server")
        log = tmp_path_factory.mktemp("sample_server") / "server.log"
        try:
            with serve_process(url, log) as base:
                yield base, eng, token, log
        finally:
            eng.dispose()

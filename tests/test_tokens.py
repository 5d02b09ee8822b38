"""Tokens as a gateway expects: Bearer only, never in a URL or a log, with an expiry, listed and
revoked by the real `landlink token` command, checked by a live server on every request."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import TEST_URL, serve_process
from tests.test_cli import run


def _create(*args: str) -> str:
    r = run("token", "create", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _problem(r: httpx.Response, status: int, *words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == status and body["error"] and body["message"] == body["detail"]
    for w in words:
        assert w in body["message"], body["message"]
    return body


def test_create_has_a_default_expiry_and_the_options_set_it(db):
    token = _create("--role", "analyst", "--name", "alice")
    in_30 = _create("--role", "viewer", "--name", "bob", "--expires-in-days", "30")
    day = date.today() + timedelta(days=200)
    on_day = _create("--role", "admin", "--name", "carol", "--expires", day.isoformat())
    assert all(t.startswith("ll_") for t in (token, in_30, on_day))
    with db.connect() as c:
        rows = {
            r.name: r
            for r in c.execute(text("SELECT name, role, prefix, expires_at FROM api_tokens"))
        }
    now = datetime.now(UTC)
    assert abs(rows["alice"].expires_at - (now + timedelta(days=365))) < timedelta(minutes=5)
    assert abs(rows["bob"].expires_at - (now + timedelta(days=30))) < timedelta(minutes=5)
    # --expires D: it works through day D (server local time), i.e. until D+1 00:00
    carol = rows["carol"].expires_at.astimezone()
    assert (carol.date(), carol.hour, carol.minute) == (day + timedelta(days=1), 0, 0)
    assert rows["alice"].prefix == token[:8] and rows["alice"].role == "analyst"

    for bad, msg in [
        (["--expires-in-days", "0"], "--expires-in-days 0"),
        (["--expires", "2001-01-01"], "that day is over"),
        (["--expires", "31/12/2099"], "--expires: '31/12/2099': expected YYYY-MM-DD"),
        (["--expires", "2099-12-31"], "at most 3660 days ahead"),
    ]:
        r = run("token", "create", "--role", "viewer", *bad)
        assert r.returncode == 2 and msg in r.stderr, (bad, r.stderr)
    r = run("token", "create", "--role", "viewer", "--expires", "2099-01-01",
            "--expires-in-days", "3")  # fmt: skip
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_editor_tokens_name_their_layers(db):
    tok = _create("--role", "editor", "--layers", "cc, BD", "--name", "市统计局")
    with db.connect() as c:
        row = c.execute(text("SELECT role, layers FROM api_tokens WHERE name = '市统计局'")).one()
    assert tok.startswith("ll_") and row == ("editor", ["BD", "CC"][::-1])  # import order
    line = next(x for x in run("token", "list").stdout.splitlines() if "市统计局" in x)
    assert " editor " in line and " cc,bd " in line
    for args, msg in [
        (["--role", "editor"], "needs --layers"),
        (["--role", "editor", "--layers", "cc,zz"], "no layer ZZ"),
        (["--role", "analyst", "--layers", "cc"], "an analyst token writes no layer"),
        (["--role", "admin", "--layers", "cc"], "writes every layer"),
    ]:
        r = run("token", "create", *args)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)


def test_list_and_revoke_take_effect_at_once(server, db):
    alice = _create("--role", "analyst", "--name", "alice")
    alice2 = _create("--role", "viewer", "--name", "alice")
    bob = _create("--role", "analyst", "--name", "bob")
    with httpx.Client(base_url=server, timeout=30) as h:
        for t in (alice, alice2, bob):
            assert h.get("/api/whoami", headers=_bearer(t)).status_code == 200

        r = run("token", "list")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert "prefix" in lines[0] and "expires" in lines[0] and "last used" in lines[0]
        bob_line = next(x for x in lines if " bob " in x)
        assert bob[:8] in bob_line and "analyst" in bob_line and bob_line.endswith("live")
        assert str(date.today().year) in bob_line.split("analyst")[1]  # created, last used
        assert "3 token(s), 3 live" in r.stdout
        assert bob not in r.stdout and alice not in r.stdout  # never the token itself

        # by name: every unrevoked token of that name
        r = run("token", "revoke", "alice")
        assert r.returncode == 0 and r.stdout.count("revoked token") == 2, r.stdout
        for t in (alice, alice2):
            _problem(h.get("/api/whoami", headers=_bearer(t)), 401, "'alice' was revoked on")
        assert h.get("/api/whoami", headers=_bearer(bob)).json()["name"] == "bob"

        # by id
        with db.connect() as c:
            bob_id = c.execute(text("SELECT id FROM api_tokens WHERE name = 'bob'")).scalar_one()
        r = run("token", "revoke", str(bob_id))
        assert r.returncode == 0 and "'bob'" in r.stdout
        _problem(h.get("/api/land/summary", headers=_bearer(bob)), 401, "revoked", "token create")
        # tiles take the token path too (no cached answer keeps a revoked token alive)
        _problem(h.get("/tiles/parcels/0/0/0.mvt", headers=_bearer(bob)), 401, "revoked")

    r = run("token", "revoke", "nobody")
    assert r.returncode == 1 and "no unrevoked token" in r.stderr
    r = run("token", "list")
    assert "3 token(s), 0 live" in r.stdout and r.stdout.count("revoked") >= 3
    assert "0 token(s)" in run("token", "list", "--live").stdout


def test_an_expired_token_is_refused_with_its_date(server, db):
    tok = _create("--role", "analyst", "--name", "old", "--expires-in-days", "1")
    with httpx.Client(base_url=server, timeout=30) as h:
        assert h.get("/api/whoami", headers=_bearer(tok)).json()["role"] == "analyst"
        with db.begin() as c:  # a day later
            c.execute(text("UPDATE api_tokens SET expires_at = now() - interval '1 second'"))
        body = _problem(h.get("/api/whoami", headers=_bearer(tok)), 401, "'old' expired on")
        assert str(date.today().year) in body["message"] and "create a new one" in body["message"]
    assert run("token", "list").stdout.rstrip().splitlines()[-2].endswith("expired")


def test_last_used_is_recorded(server, db):
    tok = _create("--role", "viewer", "--name", "v")
    with db.connect() as c:
        assert c.execute(text("SELECT last_used_at FROM api_tokens")).scalar_one() is None
    assert httpx.get(server + "/api/whoami", headers=_bearer(tok)).status_code == 200
    with db.connect() as c:
        used = c.execute(text("SELECT last_used_at FROM api_tokens")).scalar_one()
    assert used is not None and abs(used - datetime.now(UTC)) < timedelta(minutes=5)


URL_PATHS = [
    "/health",
    "/api/layers",
    "/api/whoami",
    "/api/land/unsupplied?format=csv",
    "/api/enterprises?format=xlsx",
    "/ogc/collections/parcels/items",
    "/tiles/parcels/0/0/0.mvt",
    "/tiles/parcels.json",
    "/",
]


@pytest.mark.parametrize("path", URL_PATHS)
def test_a_token_in_the_query_string_is_refused_everywhere(server, db, path):
    tok = _create("--role", "analyst")
    sep = "&" if "?" in path else "?"
    with httpx.Client(base_url=server, timeout=30) as h:
        for q in (f"token={tok}", f"access_token={tok}", "TOKEN=x", "token="):
            r = h.get(f"{path}{sep}{q}")
            body = _problem(r, 400, "Authorization: Bearer <token>", "in the URL")
            assert tok not in r.text and r.headers["content-type"] == "application/problem+json"
            assert body["error"] == "bad_request"
        # the same token as a header works, and OGC links echo no token
        r = h.get(path, headers=_bearer(tok))
        assert r.status_code in (200, 404), (path, r.text[:200])
        assert "token=" not in r.text


@pytest.mark.parametrize(
    "auth",
    [
        "Basic dXNlcjpwYXNz",
        "Token abc",
        'Digest username="u", realm="r", nonce="n", uri="/", response="x"',
        "garbage",
        "Bearer",
        "Bearer two words",
        "ll_abcdef",
    ],
)
def test_any_other_authorization_is_401(server, db, auth):
    for path in ("/health", "/api/enterprises", "/tiles/parcels/0/0/0.mvt"):
        r = httpx.get(server + path, headers={"Authorization": auth}, timeout=30)
        _problem(r, 401, "Authorization: Bearer <token>")
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_bearer_token_is_401(server, db):
    r = httpx.get(server + "/api/enterprises", headers=_bearer("ll_nope"), timeout=30)
    _problem(r, 401, "unknown token", "landlink token create")


def test_serve_never_writes_a_token_into_its_log(engine, tmp_path):
    """`landlink serve` (its own process, access log on): a token in the URL is refused and its
    value does not reach the log."""
    log = tmp_path / "serve.log"
    secret = "ll_SeCrEt_do_not_log_me"
    with serve_process(TEST_URL, log) as base:
        for path in (
            f"/health?token={secret}",
            f"/api/layers?x=1&token={secret}&y=2",
            f"/tiles/parcels/0/0/0.mvt?access_token={secret}",
        ):
            assert httpx.get(base + path, timeout=30).status_code == 400
        assert httpx.get(base + "/health", headers=_bearer(secret), timeout=30).status_code == 401
    written = log.read_text()
    assert "GET /api/layers?x=1&token=[redacted]&y=2" in written  # the access log is on
    assert secret not in written

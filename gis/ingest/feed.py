"""The change feed (部门间信息联动): every version of a source row and every derived result it
changed, in commit order, for departments' systems that poll ``GET /api/changes``.

Two kinds of entry, read together:

- **rows**: ``row_history`` (one row per version of a layer row: insert, update, retire,
  restore; who, when, via; for an update the fields that changed, old and new);
- **derived**: ``derived_changes``, written by the ``change_feed`` producer of the derivation
  graph, in the writer's transaction, after the producers it reads: an enterprise-year's A/B/C/D
  class (``evaluation``), a parcel's 三块地 status (``three_lands``), a zone's 亩均 figures
  (``per_mu``: 亩均产值 and 亩均税收 of a district, platform or corridor and year). It compares
  each changed key's value now with the value it last published (``feed_values``) and logs only
  real changes, old and new.

Exactly once: every entry carries its transaction's id (``txid``). A page holds only entries of
transactions older than every transaction of this database still running (``HORIZON``, from the
reader's snapshot), ordered by (txid, rows before derived, id); its ``next`` cursor is the last
entry's position. A transaction that commits later than a younger one is held back until it is
done, so no entry can appear before a cursor already handed out.

The feed's baseline: the values present when a kind is first published (the first refresh that
reaches it, by keys or not) are recorded silently, every key of the kind; from then on every change
is an entry.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from gis.core.graph import ALL, Changes, Context, Producer
from gis.core.layers import LAYERS
from gis.economy.evaluation import class_changes
from gis.ingest.rows import version_entry

# derived kind -> (the table it reads, SQL of (key, value) for the keys in :keys or every key)
_ZONES = "('district', 'platform', 'corridor')"
KINDS: dict[str, tuple[str, str, str]] = {
    "evaluation": (
        "evaluation_ranking",
        # key USCC:year; value the class (null: evaluated but not graded, or not evaluated)
        "SELECT k.key, to_jsonb(r.class) FROM (SELECT DISTINCT unnest(CAST(:keys AS text[])) "
        "AS key) k LEFT JOIN evaluation_ranking r ON r.uscc = split_part(k.key, ':', 1) "
        "AND r.year = CAST(nullif(split_part(k.key, ':', 2), '') AS int)",
        "SELECT uscc || ':' || year, to_jsonb(class) FROM evaluation_ranking",
    ),
    "three_lands": (
        "tile_parcel_status",
        # key DKBH; value the parcel's 三块地 status label (null: none)
        "SELECT k.key, to_jsonb(s.land_status) FROM (SELECT DISTINCT unnest(CAST(:keys AS "
        "text[])) AS key) k LEFT JOIN tile_parcel_status s ON s.parcel_no = k.key",
        "SELECT parcel_no, to_jsonb(land_status) FROM tile_parcel_status",
    ),
    "per_mu": (
        "per_mu",
        # key level:code:year of a zone; value its 亩均产值 and 亩均税收 (万元/亩, 4 decimals)
        "SELECT k.key, CASE WHEN p.level IS NOT NULL THEN jsonb_build_object("
        "'output_per_mu', round(p.output_per_mu::numeric, 4), "
        "'tax_per_mu', round(p.tax_per_mu::numeric, 4)) END "
        "FROM (SELECT DISTINCT unnest(CAST(:keys AS text[])) AS key) k "
        "LEFT JOIN per_mu p ON p.level = split_part(k.key, ':', 1) "
        "AND p.code = split_part(k.key, ':', 2) "
        "AND p.year = CAST(nullif(split_part(k.key, ':', 3), '') AS int) "
        f"WHERE split_part(k.key, ':', 1) IN {_ZONES}",
        "SELECT level || ':' || code || ':' || year, jsonb_build_object("
        "'output_per_mu', round(output_per_mu::numeric, 4), "
        f"'tax_per_mu', round(tax_per_mu::numeric, 4)) FROM per_mu WHERE level IN {_ZONES}",
    ),
}
# what a derived entry holds that is restricted (tax): withheld unless the caller may see it
RESTRICTED_VALUES = {"per_mu": ("tax_per_mu",)}


def _publish(conn: Connection, ctx: Context, kind: str, keys: set[str] | None) -> int:
    """Compare ``kind``'s values for ``keys`` (None: every key) with those last published; log
    each difference in derived_changes (unless this is the kind's first publication) and keep
    feed_values current. Returns the number logged."""
    _, keyed, every = KINDS[kind]
    baseline = not _published(conn, kind)
    if keys is None:
        now = f"SELECT * FROM ({every}) e(key, value)"
        old = "SELECT key, value FROM feed_values WHERE kind = :kind"
        params: dict = {"kind": kind}
    else:
        now = f"SELECT * FROM ({keyed}) e(key, value)"
        old = "SELECT key, value FROM feed_values WHERE kind = :kind AND key = ANY(:keys)"
        params = {"kind": kind, "keys": sorted(keys)}
    # a value of null and no value are the same: nothing published
    conn.execute(
        text(
            "CREATE TEMP TABLE _feed_diff ON COMMIT DROP AS "
            "SELECT coalesce(n.key, o.key) AS key, o.value AS old, n.value AS new FROM "
            f"(SELECT * FROM ({now}) n0 WHERE value IS NOT NULL) n "
            f"FULL JOIN ({old}) o ON o.key = n.key WHERE n.value IS DISTINCT FROM o.value"
        ),
        params,
    )
    logged = 0
    if not baseline:
        logged = conn.execute(
            text(
                "INSERT INTO derived_changes (kind, key, old, new, trigger, run_id) "
                "SELECT :kind, key, old, new, :trigger, :run FROM _feed_diff ORDER BY key"
            ),
            {"kind": kind, "trigger": ctx.trigger, "run": ctx.run_id},
        ).rowcount
    conn.execute(
        text(
            "INSERT INTO feed_values (kind, key, value) SELECT :kind, key, new FROM _feed_diff "
            "WHERE new IS NOT NULL ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value"
        ),
        {"kind": kind},
    )
    # the keys gone, by the primary key: a join of feed_values (just filled in this transaction,
    # its statistics from before) to the unanalysed temp table was planned as a nested loop of
    # sequential scans, minutes on a city of 100,000 parcels
    gone = conn.execute(text("SELECT key FROM _feed_diff WHERE new IS NULL")).scalars().all()
    if gone:
        conn.execute(
            text("DELETE FROM feed_values WHERE kind = :kind AND key = ANY(:keys)"),
            {"kind": kind, "keys": gone},
        )
    conn.execute(text("DROP TABLE _feed_diff"))
    return logged


def _published(conn: Connection, kind: str) -> bool:
    """Whether ``kind`` has published values (its baseline is recorded)."""
    return conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM feed_values WHERE kind = :kind)"), {"kind": kind}
    ).scalar_one()


def refresh_feed(conn: Connection, ctx: Context, changes: Changes | None) -> Changes:
    """The ``change_feed`` producer: for the evaluation classes, parcel statuses and zone
    亩均 figures whose keys changed (everything when ``changes`` is None), log what changed
    in ``derived_changes``. Returns ``derived_changes``: ALL when something was logged."""
    out = Changes()
    if changes is not None:
        changes = class_changes(changes)  # the evaluation's rows whose class changed
    logged = 0
    for kind, (table, _, _) in KINDS.items():
        # a kind not yet published is published whole, whatever changed (its baseline is every
        # value: a first refresh by keys would otherwise record a few, and a later change of any
        # other key would read as new, without its old value)
        if changes is None or changes.everything(table) or not _published(conn, kind):
            logged += _publish(conn, ctx, kind, None)
        elif changes.get(table):
            logged += _publish(conn, ctx, kind, set(changes[table]))
    ctx.counts["change_feed"] = logged
    if logged:
        out.add("derived_changes", [ALL])
    return out


PRODUCERS = (
    Producer(
        "change_feed",
        reads=tuple(t for t, _, _ in KINDS.values()),
        writes=("derived_changes", "feed_values"),
        run=refresh_feed,
        doc="the change feed's derived entries: classes, 三块地 statuses, zone 亩均 figures",
    ),
)


# ---- reading the feed -----------------------------------------------------------------------

CURSOR = re.compile(r"^(\d+)-([01])-(\d+)$")
# The oldest transaction that may still write to this database's feed, as of the reader's
# snapshot: the oldest of those it sees running, leaving out those positively known to run in
# another database of the cluster (they cannot write here; a long job there must not hold the
# feed back); none running: the snapshot's xmax. A transaction that ends between the snapshot
# and the look at pg_stat_activity is not left out, so the horizon errs towards holding back.
HORIZON = (
    "(SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot())) "
    "FROM pg_snapshot_xip(pg_current_snapshot()) x WHERE NOT EXISTS ("
    "SELECT 1 FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL "
    "AND a.datname <> current_database() "
    "AND a.backend_xid::text::bigint = x::text::bigint % 4294967296))"
)
DERIVED_NAMES = tuple(KINDS)


def parse_cursor(cursor: str | None) -> tuple[int, int, int]:
    """A ``next`` cursor (``txid-part-id``) as a tuple; the start of the feed for None.
    ValueError for anything else (``now`` is handled by ``read_feed``)."""
    if not cursor:
        return (0, 0, 0)
    m = CURSOR.match(cursor.strip())
    if m is None:
        raise ValueError(
            f"since={cursor[:40]!r} is not a cursor of this feed; give the 'next' value of a "
            "previous page, 'now' to start from the present, or leave it out to start from "
            "the beginning"
        )
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def read_feed(
    conn: Connection, since: str | None, limit: int, layer: str | None, sees: set[str]
) -> dict:
    """One page of the feed after cursor ``since``: at most ``limit`` entries, oldest first, of
    one ``layer`` (a contract code for rows, or a derived kind) or all; restricted values only of
    layers (contract codes) and derived kinds in ``sees``. Returns ``{"changes", "next",
    "more"}``; ``next`` is ``since`` again when there is nothing new."""
    if since == "now":
        return {"changes": [], "next": feed_end(conn), "more": False}
    tx, part, ident = parse_cursor(since)
    code = layer.upper() if layer else None
    rows_wanted = layer is None or code in LAYERS
    derived_wanted = layer is None or layer in KINDS
    if not rows_wanted and not derived_wanted:
        raise ValueError(
            f"layer={layer!r}: give a layer code ({', '.join(LAYERS)}) or a derived result "
            f"({', '.join(KINDS)})"
        )
    # after the cursor, in (txid, part, id) order, written so that the (txid, id) index serves
    tx_c = "CAST(CAST(:tx AS text) AS xid8)"
    after_rows = f"(txid, id) > ({tx_c}, :id)" if part == 0 else f"txid > {tx_c}"
    after_derived = f"txid >= {tx_c}" if part == 0 else f"(txid, id) > ({tx_c}, :id)"
    done = f"txid < {HORIZON}"
    parts = []
    if rows_wanted:
        parts.append(
            "SELECT txid::text::bigint AS tx, 0 AS part, id, layer, key, op, version, who, at, "
            "via, changes, NULL::jsonb AS old, NULL::jsonb AS new FROM row_history "
            f"WHERE {after_rows} AND {done}"
            + (" AND layer = :code" if layer else "")
            + " ORDER BY txid, id LIMIT :n"
        )
    if derived_wanted:
        parts.append(
            "SELECT txid::text::bigint, 1, id, kind, key, CASE WHEN old IS NULL THEN 'insert' "
            "WHEN new IS NULL THEN 'delete' ELSE 'update' END, NULL::int, NULL, at, trigger, "
            "NULL::jsonb, old, new FROM derived_changes "
            f"WHERE {after_derived} AND {done}"
            + (" AND kind = :layer" if layer else "")
            + " ORDER BY txid, id LIMIT :n"
        )
    union = " UNION ALL ".join(f"({p})" for p in parts)
    sql = f"SELECT * FROM ({union}) q ORDER BY 1, 2, 3 LIMIT :n"
    got = conn.execute(
        text(sql),
        {
            "tx": tx,
            "part": part,
            "id": ident,
            "code": code,
            "layer": layer,
            "n": limit + 1,
        },  # fmt: skip
    ).all()
    more = len(got) > limit
    got = got[:limit]
    out = [_entry(r, sees) for r in got]
    nxt = f"{got[-1][0]}-{got[-1][1]}-{got[-1][2]}" if got else (since or "0-0-0")
    return {"changes": out, "next": nxt, "more": more}


def feed_end(conn: Connection) -> str:
    """The cursor of the feed's last entry now (``since=now``: from here on)."""
    done = f"txid < {HORIZON}"
    row = conn.execute(
        text(
            "SELECT tx, part, id FROM ("
            f"(SELECT txid::text::bigint AS tx, 0 AS part, id FROM row_history WHERE {done} "
            "ORDER BY txid DESC, id DESC LIMIT 1) UNION ALL "
            f"(SELECT txid::text::bigint, 1, id FROM derived_changes WHERE {done} "
            "ORDER BY txid DESC, id DESC LIMIT 1)) q ORDER BY 1 DESC, 2 DESC, 3 DESC LIMIT 1"
        )
    ).first()
    return "0-0-0" if row is None else f"{row[0]}-{row[1]}-{row[2]}"


def _entry(r, sees: set[str]) -> dict:  # type: ignore[no-untyped-def]
    cursor = f"{r[0]}-{r[1]}-{r[2]}"
    at = r[8].isoformat() if r[8] is not None else None
    if r[1] == 0:  # a source row's version
        layer = LAYERS[r[3]]
        e = {
            "cursor": cursor,
            "source": "row",
            "layer": r[3],
            "key": r[4],
            "op": r[5],
            "version": r[6],
            "who": r[7],
            "at": at,
            "via": r[9],
        }
        return version_entry(layer, {**e, "changes": r[10]}, r[3] in sees)
    old, new = r[11], r[12]
    hidden = RESTRICTED_VALUES.get(r[3], ())
    if hidden and r[3] not in sees:
        old = {k: v for k, v in old.items() if k not in hidden} if isinstance(old, dict) else old
        new = {k: v for k, v in new.items() if k not in hidden} if isinstance(new, dict) else new
    return {
        "cursor": cursor,
        "source": "derived",
        "layer": r[3],
        "key": r[4],
        "op": r[5],
        "old": old,
        "new": new,
        "at": at,
        "cause": r[9],
    }

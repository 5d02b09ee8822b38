"""CQL2 (OGC API Features Part 3) text and JSON parsed to an AST, and compiled to SQL with bound
parameters.

Parsing is the maintained ``cql2`` package's (text and JSON, both to its CQL2-JSON tree); this
module turns that tree into its own AST (one compiler for both encodings), after checking the
text's nesting itself (the package's parser is slow or overflows its stack on deep nesting).
Supported: comparisons ``= <> < <= > >=``, ``AND`` / ``OR`` / ``NOT`` and parentheses,
``[NOT] LIKE`` (``%`` and ``_``), ``[NOT] IN (...)``, ``[NOT] BETWEEN a AND b``,
``IS [NOT] NULL``, ``S_INTERSECTS(geometry, <WKT, GeoJSON or BBOX(...)>)`` (POINT, LINESTRING,
POLYGON, their MULTI kinds and GEOMETRYCOLLECTION); literals: 'strings' ('' escapes a quote),
numbers, TRUE / FALSE, DATE('YYYY-MM-DD'), TIMESTAMP('...').

Safety: the compiled SQL is made only of (1) the SQL expressions the collection registry wrote
for the properties the caller may see, looked up by name, (2) fixed operators and keywords, and
(3) ``:fN`` placeholders. Every value a client writes travels as a bound parameter; geometries
are rebuilt as WKT from their parsed numbers, then bound too. An unknown property or a type
mismatch is a ``CQL2Error`` naming it (HTTP 400).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import cql2 as _cql2

from gis.core.config import get_settings
from gis.serving.collections import Collection

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gis.serving.features_sql import Crs

GEOMETRY_NAMES = ("geometry", "geom")


class CQL2Error(ValueError):
    """A filter that cannot be parsed or does not fit the collection; the message says why."""


# ---- AST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    name: str


@dataclass(frozen=True)
class Literal:
    value: Any  # str | int | float | bool | date | datetime


@dataclass(frozen=True)
class GeometryLiteral:
    wkt: str  # rebuilt by us from parsed numbers
    positions: tuple[tuple[float, float], ...] = ()  # its (first, second) axis values


@dataclass(frozen=True)
class Compare:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Like:
    left: Any
    pattern: Any
    negated: bool = False


@dataclass(frozen=True)
class In:
    left: Any
    items: tuple
    negated: bool = False


@dataclass(frozen=True)
class Between:
    left: Any
    low: Any
    high: Any
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    left: Any
    negated: bool = False


@dataclass(frozen=True)
class SIntersects:
    left: Any
    right: Any


@dataclass(frozen=True)
class And:
    items: tuple


@dataclass(frozen=True)
class Or:
    items: tuple


@dataclass(frozen=True)
class Not:
    item: Any


# ---- parsing: the maintained ``cql2`` package, then its CQL2-JSON AST to ours -------------

# how deep coordinates may nest inside a geometry literal: GEOMETRYCOLLECTION(MULTIPOLYGON(((
MAX_WKT_NESTING = 4
# parentheses that are neither groups nor geometry (calls such as DATE(...), IN (...))
MAX_CALL_NESTING = 4

_SCAN = re.compile(
    r"""(?P<str>'(?:[^']|'')*'?)|(?P<qid>"(?:[^"]|"")*"?)|(?P<word>[^\W\d]\w*)"""
    r"""|(?P<open>\()|(?P<close>\))|(?P<other>[^\s'"()\w]+|\d[\w.]*)|(?P<ws>\s+)""",
)
_GEOMETRY_WORDS = {
    "POINT",
    "LINESTRING",
    "POLYGON",
    "MULTIPOINT",
    "MULTILINESTRING",
    "MULTIPOLYGON",
    "GEOMETRYCOLLECTION",
    "BBOX",
}


@dataclass(frozen=True)
class Limits:
    """How big a filter may be: characters, terms (comparisons, LIKE, IN, BETWEEN, IS NULL,
    S_INTERSECTS, TRUE/FALSE) and depth (nested parentheses and NOTs). Depth is checked by a
    scan of the text before the ``cql2`` parser runs (deep nesting makes it slow or overflow
    its stack), terms on the parsed tree."""

    chars: int
    terms: int
    depth: int

    @classmethod
    def configured(cls) -> Limits:
        t = get_settings().tiles
        return cls(t.filter_max_chars, t.filter_max_terms, t.filter_max_depth)


def _too_deep(limits: Limits) -> CQL2Error:
    return CQL2Error(
        f"filter nested deeper than {limits.depth} levels of parentheses and NOT "
        "(the limit, setting tiles.filter_max_depth)"
    )


def _scan_depth(s: str, limits: Limits) -> None:
    """Refuse CQL2 text nested deeper than the limits, in one pass without recursion: groups
    (parentheses not after a name) and NOTs count towards ``limits.depth`` (a run of NOTs lasts
    until the next AND / OR at its level), coordinates towards MAX_WKT_NESTING, calls towards
    MAX_CALL_NESTING."""
    levels: list[list] = [["group", 0]]  # per open parenthesis: its kind, NOTs in effect in it
    groups = 0
    geometry_at: int | None = None  # len(levels) where a geometry literal opened
    calls = 0
    prev = ""
    for m in _SCAN.finditer(s):
        kind = m.lastgroup
        if kind == "ws":
            continue
        text = m.group()
        if kind == "word":
            up = text.upper()
            if up == "NOT":
                levels[-1][1] += 1
            elif up in ("AND", "OR"):
                levels[-1][1] = 0
        elif kind == "open":
            up = prev.upper()
            if geometry_at is not None or up in _GEOMETRY_WORDS:
                if geometry_at is None:
                    geometry_at = len(levels)
                if len(levels) - geometry_at + 1 > MAX_WKT_NESTING:
                    raise CQL2Error(
                        f"coordinates nested deeper than {MAX_WKT_NESTING} levels at position "
                        f"{m.start() + 1}"
                    )
                levels.append(["geometry", 0])
            elif prev and (prev[0].isalpha() or prev[0] == "_") and up not in ("AND", "OR", "NOT"):
                calls += 1
                if calls > MAX_CALL_NESTING:
                    raise CQL2Error(
                        f"calls nested deeper than {MAX_CALL_NESTING} levels at position "
                        f"{m.start() + 1}"
                    )
                levels.append(["call", 0])
            else:
                groups += 1
                levels.append(["group", 0])
        elif kind == "close" and len(levels) > 1:
            k, _ = levels.pop()
            if k == "group":
                groups -= 1
            elif k == "call":
                calls -= 1
            if geometry_at is not None and len(levels) < geometry_at:
                geometry_at = None
        if groups + sum(n for _, n in levels) > limits.depth:
            raise _too_deep(limits)
        prev = text


def _parse_error(e: Exception, s: str) -> CQL2Error:
    """The ``cql2`` package's parse error as one line: the position, what stands there, and
    what could stand there in words (its grammar's rule names translated)."""
    msg = str(e)
    where = re.search(r"-->\s*(\d+):(\d+)", msg)
    rules = re.search(r"=\s*expected (.+)", msg)
    names = set(re.findall(r"[A-Za-z_]+", rules.group(1))) if rules else set()
    wants = []
    if names & {"Identifier", "DECIMAL", "Double", "SingleQuotedString", "Expr"}:
        wants.append("a property or a value")
    if names & {"Eq", "Gt", "Lt", "NotEq", "IsNullPostfix"}:
        wants.append("a comparison (= <> < <= > >=, LIKE, IN, BETWEEN, IS NULL)")
    elif names & {"And", "Or"}:
        wants.append("AND or OR")
    if "EOI" in names:
        wants.append("the end of the filter")
    want = " or ".join(wants) or (rules.group(1) if rules else msg.strip().splitlines()[-1])
    if not where:
        return CQL2Error(f"cannot parse the filter: expected {want}")
    line, col = int(where.group(1)), int(where.group(2))
    pos = sum(len(x) + 1 for x in s.split("\n")[: line - 1]) + col - 1
    found = repr(s[pos : pos + 12]) if pos < len(s) else "the end of the filter"
    depth = 0
    for m in _SCAN.finditer(s):
        depth += {"open": 1, "close": -1}.get(m.lastgroup or "", 0)
    if depth > 0:
        found += f" ({depth} parenthesis not closed: expected ')')"
    elif depth < 0:
        found += f" ({-depth} ')' without a '(')"
    return CQL2Error(
        f"cannot parse the filter at position {pos + 1}: expected {want}, found {found}"
    )


def _check_text(s: str, limits: Limits) -> None:
    if not s or not s.strip():
        raise CQL2Error("empty filter")
    if len(s) > limits.chars:
        raise CQL2Error(
            f"filter longer than {limits.chars} characters (the limit, setting "
            "tiles.filter_max_chars)"
        )
    if "\x00" in s:
        raise CQL2Error("the filter contains a NUL character")


def parse(s: str, limits: Limits | None = None):
    """CQL2 text -> AST (parsed by the ``cql2`` package into CQL2-JSON, then
    :func:`from_json`); raises CQL2Error naming the position of the problem, or the limit
    (``limits``, default the configured ones) that the filter passes."""
    limits = limits or Limits.configured()
    _check_text(s, limits)
    _scan_depth(s, limits)
    try:
        tree = _cql2.parse_text(s).to_json()
    except (_cql2.ParseError, _cql2.ValidationError, ValueError) as e:
        raise _parse_error(e, s) from None
    return from_json(tree, limits)


def parse_json(s: str, limits: Limits | None = None):
    """CQL2-JSON (the ``filter`` query parameter with ``filter-lang=cql2-json``) -> AST; the
    same limits as :func:`parse`, nesting counted on the JSON before the ``cql2`` package
    reads it."""
    limits = limits or Limits.configured()
    _check_text(s, limits)
    try:
        raw = json.loads(s)
    except (ValueError, RecursionError) as e:
        where = f" at position {e.pos + 1}" if isinstance(e, json.JSONDecodeError) else ""
        raise CQL2Error(f"filter is not JSON{where}: {e}") from None
    # every level of logic takes two JSON levels ({"op", "args": [...]}); geometry up to 5
    stack = [(raw, 0)]
    while stack:
        node, d = stack.pop()
        if d > 2 * limits.depth + MAX_WKT_NESTING + 4:
            raise _too_deep(limits)
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    try:
        tree = _cql2.parse_json(s).to_json()
    except (_cql2.ParseError, _cql2.ValidationError, ValueError) as e:
        raise CQL2Error(f"not valid CQL2-JSON: {str(e).strip().splitlines()[0]}") from None
    return from_json(tree, limits)


_COMPARE = {"=", "<>", "<", "<=", ">", ">="}
_SUPPORTED = "and, or, not, = <> < <= > >=, like, in, between, isNull, s_intersects"


class _FromJson:
    """CQL2-JSON (the ``cql2`` package's ``to_json()``) -> the AST above; counts terms."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.terms = 0

    def term(self) -> None:
        self.terms += 1
        if self.terms > self.limits.terms:
            raise CQL2Error(
                f"filter has more than {self.limits.terms} terms (comparisons, LIKE, IN, "
                "BETWEEN, IS NULL, S_INTERSECTS; the limit, setting tiles.filter_max_terms); "
                "use IN (...) for many values of one property"
            )

    def boolean(self, n: Any):
        if isinstance(n, bool):
            self.term()
            return Literal(n)
        if not isinstance(n, dict) or "op" not in n:
            raise CQL2Error("a filter must be a condition, e.g. name = 'x'")
        op, args = n["op"], n.get("args") or []
        if op in ("and", "or"):
            items: list = []
            for a in args:
                node = self.boolean(a)
                same = And if op == "and" else Or
                items.extend(node.items if isinstance(node, same) else [node])
            return And(tuple(items)) if op == "and" else Or(tuple(items))
        if op == "not":
            self._arity(op, args, 1)
            inner = self.boolean(args[0])
            if isinstance(inner, Like | In | Between | IsNull):
                return dataclasses.replace(inner, negated=not inner.negated)
            return Not(inner)
        self.term()
        if op in _COMPARE:
            self._arity(op, args, 2)
            return Compare(op, self.scalar(args[0]), self.scalar(args[1]))
        if op == "like":
            self._arity(op, args, 2)
            return Like(self.scalar(args[0]), self.scalar(args[1]))
        if op == "in":
            self._arity(op, args, 2)
            if not isinstance(args[1], list) or not args[1]:
                raise CQL2Error("IN needs a list of one or more values, e.g. x IN ('a', 'b')")
            return In(self.scalar(args[0]), tuple(self.scalar(v) for v in args[1]))
        if op == "between":
            self._arity(op, args, 3)
            return Between(*(self.scalar(a) for a in args))
        if op == "isNull":
            self._arity(op, args, 1)
            return IsNull(self.scalar(args[0]))
        if op == "s_intersects":
            self._arity(op, args, 2)
            return SIntersects(self.spatial(args[0]), self.spatial(args[1]))
        raise CQL2Error(f"operator {op!r} is not supported; supported: {_SUPPORTED}")

    @staticmethod
    def _arity(op: str, args: list, n: int) -> None:
        if len(args) != n:
            raise CQL2Error(f"{op} takes {n} argument(s), got {len(args)}")

    def scalar(self, v: Any):
        if isinstance(v, dict):
            if set(v) == {"property"} and isinstance(v["property"], str):
                return Property(v["property"])
            if set(v) == {"date"} and isinstance(v["date"], str):
                return Literal(_temporal("DATE", v["date"]))
            if set(v) == {"timestamp"} and isinstance(v["timestamp"], str):
                return Literal(_temporal("TIMESTAMP", v["timestamp"]))
            if "op" in v:
                raise CQL2Error(
                    f"{v['op']!r} cannot be used as a value; compare a property with a literal"
                )
            if "type" in v or "bbox" in v:
                raise CQL2Error("a geometry can only be used in S_INTERSECTS")
            raise CQL2Error(f"unsupported value {json.dumps(v)[:80]}")
        if isinstance(v, bool) or isinstance(v, str) or v is None:
            return Literal(v)
        if isinstance(v, int | float):
            return Literal(_number(v))
        raise CQL2Error(f"unsupported value {json.dumps(v)[:80]}")

    def spatial(self, v: Any):
        if isinstance(v, dict) and "bbox" in v:
            nums = v["bbox"]
            if not isinstance(nums, list) or len(nums) != 4:
                raise CQL2Error("BBOX needs 4 numbers (2D)")
            x0, y0, x1, y1 = (_real(n) for n in nums)
            ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
            return GeometryLiteral(
                _wkt({"type": "Polygon", "coordinates": [ring]}), ((x0, y0), (x1, y1))
            )
        if isinstance(v, dict) and "type" in v:
            return GeometryLiteral(_wkt(v), tuple(_positions(v)))
        node = self.scalar(v)
        if not isinstance(node, Property):
            raise CQL2Error(
                "S_INTERSECTS takes the geometry property and a geometry (WKT, GeoJSON or BBOX)"
            )
        return node


def from_json(tree: Any, limits: Limits | None = None):
    """A CQL2-JSON tree (as ``cql2.Expr.to_json()`` gives it) -> AST, counting terms."""
    return _FromJson(limits or Limits.configured()).boolean(tree)


def _number(v: int | float) -> int | float:
    """A number literal (an int where it is a whole number); refused when not finite."""
    if isinstance(v, float):
        if not math.isfinite(v):
            raise CQL2Error("a number in the filter is out of range")
        if v.is_integer() and abs(v) < 2**53:
            return int(v)
    return v


def _real(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise CQL2Error(f"coordinate {v!r} is not a finite number (out of range)")
    return float(v)


def _temporal(kind: str, s: str) -> date | datetime:
    try:
        if kind == "DATE":
            return date.fromisoformat(s)
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise CQL2Error(f"{kind}({s!r}) is not a valid {kind.lower()}") from None


def _positions(g: dict) -> Iterator[tuple[float, float]]:
    """The (first axis, second axis) numbers of every position of a checked GeoJSON geometry."""
    if g["type"] == "GeometryCollection":
        for part in g["geometries"]:
            yield from _positions(part)
        return

    def walk(c):  # type: ignore[no-untyped-def]
        if c and not isinstance(c[0], list):
            yield float(c[0]), float(c[1])
            return
        for x in c:
            yield from walk(x)

    yield from walk(g["coordinates"])


def _fmt(v: float) -> str:
    return repr(float(v))


def _wkt(g: dict, depth: int = 0) -> str:
    """WKT rebuilt from a GeoJSON geometry's numbers (2D); checks the nesting each type needs
    and that every number is finite. GEOMETRYCOLLECTION holds the other types (not itself)."""
    kind = str(g.get("type", ""))

    def pt(p) -> str:
        if not isinstance(p, list) or len(p) not in (2, 3):
            raise CQL2Error(f"{kind.upper()}: a position needs 2 or 3 numbers")
        return " ".join(_fmt(_real(x)) for x in p[:2])

    def seq(ps, least: int, what: str) -> list:
        if not isinstance(ps, list) or len(ps) < least:
            raise CQL2Error(f"{kind.upper()}: {what} needs at least {least} positions")
        return ps

    def line(ps, least: int = 2, what: str = "a line") -> str:
        return "(" + ", ".join(pt(p) for p in seq(ps, least, what)) + ")"

    def poly(rings) -> str:
        if not isinstance(rings, list) or not rings:
            raise CQL2Error(f"{kind.upper()}: a polygon needs a ring")
        return "(" + ", ".join(line(r, 4, "a ring") for r in rings) + ")"

    def many(xs) -> list:
        if not isinstance(xs, list) or not xs:
            raise CQL2Error(f"{kind.upper()}: needs at least one part")
        return xs

    c = g.get("coordinates")
    if kind == "Point":
        return f"POINT({pt(c)})"
    if kind == "LineString":
        return f"LINESTRING{line(c)}"
    if kind == "Polygon":
        return f"POLYGON{poly(c)}"
    if kind == "MultiPoint":
        return "MULTIPOINT(" + ", ".join(f"({pt(p)})" for p in many(c)) + ")"
    if kind == "MultiLineString":
        return "MULTILINESTRING(" + ", ".join(line(x) for x in many(c)) + ")"
    if kind == "MultiPolygon":
        return "MULTIPOLYGON(" + ", ".join(poly(x) for x in many(c)) + ")"
    if kind == "GeometryCollection" and depth == 0:
        parts = many(g.get("geometries"))
        return "GEOMETRYCOLLECTION(" + ", ".join(_wkt(p, 1) for p in parts) + ")"
    raise CQL2Error(f"unsupported geometry {kind or json.dumps(g)[:60]}")


# ---- SQL ------------------------------------------------------------------------------------


class _Compiler:
    def __init__(self, coll: Collection, analyst: bool, crs: Crs):
        self.props = {p.name: p for p in coll.visible(analyst)}
        self.hidden = {p.name for p in coll.props} - self.props.keys()
        self.coll = coll
        self.params: dict[str, Any] = {}
        self.crs = crs

    def bind(self, v: Any) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = v
        return f":{name}"

    def prop(self, p: Property):
        if p.name in GEOMETRY_NAMES:
            raise CQL2Error(f"the geometry {p.name!r} can only be used in S_INTERSECTS")
        if p.name in self.hidden:
            raise CQL2Error(f"property {p.name!r} needs an analyst token")
        found = self.props.get(p.name)
        if not found:
            raise CQL2Error(
                f"unknown property {p.name!r}; queryables: {', '.join(sorted(self.props))}"
            )
        return found

    def value(self, node, want: str | None) -> tuple[str, str | None]:
        """SQL for a scalar and its type; literals are coerced to ``want`` and bound."""
        if isinstance(node, Property):
            p = self.prop(node)
            return f"({p.sql})", p.type
        if isinstance(node, Literal):
            return self.bind(_coerce(node.value, want)), want
        raise CQL2Error("a geometry can only be used in S_INTERSECTS")

    def pair(self, a, b) -> tuple[str, str]:
        ta = self.prop(a).type if isinstance(a, Property) and a.name not in GEOMETRY_NAMES else None
        tb = self.prop(b).type if isinstance(b, Property) and b.name not in GEOMETRY_NAMES else None
        want = ta or tb
        if not isinstance(a, Property) and not isinstance(b, Property):
            raise CQL2Error("a comparison needs a property on one side, e.g. name = 'x'")
        if ta and tb and ta != tb and {ta, tb} != {"integer", "number"}:
            raise CQL2Error(f"cannot compare {a.name} ({ta}) with {b.name} ({tb})")
        sa, _ = self.value(a, want)
        sb, _ = self.value(b, want)
        return sa, sb

    def sql(self, n) -> str:
        if isinstance(n, And):
            return "(" + " AND ".join(self.sql(i) for i in n.items) + ")"
        if isinstance(n, Or):
            return "(" + " OR ".join(self.sql(i) for i in n.items) + ")"
        if isinstance(n, Not):
            return f"(NOT {self.sql(n.item)})"
        if isinstance(n, Literal) and isinstance(n.value, bool):
            return "TRUE" if n.value else "FALSE"
        if isinstance(n, Compare):
            a, b = self.pair(n.left, n.right)
            return f"({a} {n.op} {b})"
        if isinstance(n, Like):
            for side in (n.left, n.pattern):
                if isinstance(side, Property) and self.prop(side).type != "string":
                    raise CQL2Error(f"LIKE needs a text property; {side.name} is not text")
            a, b = self.pair(n.left, n.pattern)
            return f"({a} {'NOT ' if n.negated else ''}LIKE {b})"
        if isinstance(n, Between):
            a, lo = self.pair(n.left, n.low)
            _, hi = self.pair(n.left, n.high)
            return f"({a} {'NOT ' if n.negated else ''}BETWEEN {lo} AND {hi})"
        if isinstance(n, In):
            a, first = self.pair(n.left, n.items[0])
            rest = [self.pair(n.left, i)[1] for i in n.items[1:]]
            return f"({a} {'NOT ' if n.negated else ''}IN ({', '.join([first, *rest])}))"
        if isinstance(n, IsNull):
            a, _ = self.value(n.left, None)
            return f"({a} IS {'NOT ' if n.negated else ''}NULL)"
        if isinstance(n, SIntersects):
            return self.spatial(n)
        raise CQL2Error("a filter must be a condition, e.g. name = 'x'")

    def spatial(self, n: SIntersects) -> str:
        args = [n.left, n.right]
        props = [a for a in args if isinstance(a, Property)]
        geoms = [a for a in args if isinstance(a, GeometryLiteral)]
        if len(props) != 1 or len(geoms) != 1 or props[0].name not in GEOMETRY_NAMES:
            raise CQL2Error(
                "S_INTERSECTS takes the geometry property (geometry) and one WKT geometry, "
                "e.g. S_INTERSECTS(geometry, POINT(120.2 30.2))"
            )
        geom = geoms[0]
        for a, b in geom.positions:
            x, y = (b, a) if self.crs.flip else (a, b)
            if self.crs.outside(x, y):
                raise CQL2Error(
                    f"S_INTERSECTS: the position {a:g} {b:g} is outside the range of "
                    f"{self.crs.uri} ({self.crs.range_text}); filter-crs names the CRS"
                )
        g = f"ST_GeomFromText({self.bind(geom.wkt)}, {int(self.crs.srid)})"
        if self.crs.flip:
            g = f"ST_FlipCoordinates({g})"
        return f"ST_Intersects({self.coll.geom}, {self.crs.storage_sql(g)})"


def _coerce(v: Any, want: str | None) -> Any:
    if want is None:
        return v
    if want == "string":
        if isinstance(v, str):
            return v
        raise CQL2Error(f"{v!r} is not text; quote it: '{v}'")
    if want in ("integer", "number"):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise CQL2Error(f"{v!r} is not a number")
        return v
    if want == "boolean":
        if isinstance(v, bool):
            return v
        raise CQL2Error(f"{v!r} is not TRUE or FALSE")
    if want == "date":
        if isinstance(v, datetime):
            return v.date()
        if isinstance(v, date):
            return v
        if isinstance(v, str):
            try:
                return date.fromisoformat(v)
            except ValueError:
                raise CQL2Error(f"{v!r} is not a date (YYYY-MM-DD)") from None
        raise CQL2Error(f"{v!r} is not a date")
    return v


def to_sql(
    node, coll: Collection, analyst: bool, crs: Crs | None = None
) -> tuple[str, dict[str, Any]]:
    """A parsed filter as an SQL boolean expression and its bound parameters (``:fN``).

    ``crs``: the CRS of WKT literals (filter-crs; default CRS84, lon/lat), a
    ``gis.serving.features_sql.Crs``; their positions must lie in its range.
    """
    if crs is None:
        from gis.serving.features_sql import CRS84, CRSS

        crs = CRSS[CRS84]
    c = _Compiler(coll, analyst, crs)
    return c.sql(node), c.params

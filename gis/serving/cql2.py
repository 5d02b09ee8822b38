"""CQL2 text (OGC API Features Part 3) parsed to an AST, and compiled to SQL with bound parameters.

Supported: comparisons ``= <> < <= > >=``, ``AND`` / ``OR`` / ``NOT`` and parentheses,
``[NOT] LIKE`` (``%`` and ``_``), ``[NOT] IN (...)``, ``[NOT] BETWEEN a AND b``,
``IS [NOT] NULL``, ``S_INTERSECTS(geometry, <WKT or BBOX(...)>)``; literals: 'strings' (''
escapes a quote), numbers, TRUE / FALSE, DATE('YYYY-MM-DD'), TIMESTAMP('...').

Safety: the compiled SQL is made only of (1) the SQL expressions the collection registry wrote
for the properties the caller may see, looked up by name, (2) fixed operators and keywords, and
(3) ``:fN`` placeholders. Every value a client writes travels as a bound parameter; WKT is parsed
into numbers and rebuilt, then bound too. An unknown property or a type mismatch is a
``CQL2Error`` naming it (HTTP 400).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

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


# ---- tokens ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)
  | (?P<qid>"(?:[^"]|"")+")
  | (?P<id>[A-Za-z_\u00c0-\uffff][A-Za-z0-9_.:\u00c0-\uffff]*)
  | (?P<op><>|<=|>=|!=|=|<|>|\(|\)|,|-|\+)
    """,
    re.VERBOSE,
)
_WKT_TYPES = {
    "POINT",
    "LINESTRING",
    "POLYGON",
    "MULTIPOINT",
    "MULTILINESTRING",
    "MULTIPOLYGON",
    "BBOX",
}
# deepest nesting of coordinate lists a WKT literal needs (MULTIPOLYGON: polygons, rings, points)
MAX_WKT_NESTING = 3


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(s: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(s):
        m = _TOKEN.match(s, i)
        if not m:
            raise CQL2Error(f"unexpected character {s[i]!r} at position {i + 1}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), i))
        i = m.end()
    out.append(_Tok("end", "", len(s)))
    return out


@dataclass(frozen=True)
class Limits:
    """How big a filter may be: characters, terms (comparisons, LIKE, IN, BETWEEN, IS NULL,
    S_INTERSECTS, TRUE/FALSE) and depth (nested parentheses and NOTs). The parser refuses a
    filter as soon as it passes one, before any recursion could run deep."""

    chars: int
    terms: int
    depth: int

    @classmethod
    def configured(cls) -> Limits:
        t = get_settings().tiles
        return cls(t.filter_max_chars, t.filter_max_terms, t.filter_max_depth)


class _Parser:
    def __init__(self, s: str, limits: Limits):
        self.toks = _tokens(s)
        self.i = 0
        self.depth = 0
        self.terms = 0
        self.limits = limits

    def enter(self) -> None:
        """One level deeper (a parenthesis or a NOT); refused past the limit."""
        self.depth += 1
        if self.depth > self.limits.depth:
            raise CQL2Error(
                f"filter nested deeper than {self.limits.depth} levels of parentheses and NOT "
                "(the limit, setting tiles.filter_max_depth)"
            )

    def term(self) -> None:
        """One more term; refused past the limit."""
        self.terms += 1
        if self.terms > self.limits.terms:
            raise CQL2Error(
                f"filter has more than {self.limits.terms} terms (comparisons, LIKE, IN, "
                "BETWEEN, IS NULL, S_INTERSECTS; the limit, setting tiles.filter_max_terms); "
                "use IN (...) for many values of one property"
            )

    # helpers
    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        t = self.peek()
        self.i += 1
        return t

    def kw(self, *words: str, k: int = 0) -> bool:
        t = self.peek(k)
        return t.kind == "id" and t.text.upper() in words

    def expect_op(self, op: str) -> None:
        t = self.next()
        if t.kind != "op" or t.text != op:
            raise CQL2Error(f"expected {op!r} at position {t.pos + 1}, found {t.text or 'end'!r}")

    def expect_kw(self, word: str) -> None:
        t = self.next()
        if not (t.kind == "id" and t.text.upper() == word):
            raise CQL2Error(
                f"expected {word} at position {t.pos + 1}, found {t.text or 'end of filter'!r}"
            )

    # grammar
    def parse(self):
        node = self.or_()
        t = self.peek()
        if t.kind != "end":
            raise CQL2Error(f"unexpected {t.text!r} at position {t.pos + 1}")
        return node

    def or_(self):
        items = [self.and_()]
        while self.kw("OR"):
            self.next()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self):
        items = [self.not_()]
        while self.kw("AND"):
            self.next()
            items.append(self.not_())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_(self):
        negations = 0  # a run of NOTs, counted without recursion
        while self.kw("NOT"):
            self.next()
            self.enter()
            negations += 1
        node = self.primary()
        self.depth -= negations
        for _ in range(negations):
            node = Not(node)
        return node

    def primary(self):
        t = self.peek()
        if t.kind == "op" and t.text == "(":
            # a parenthesised boolean expression
            self.next()
            self.enter()
            node = self.or_()
            self.expect_op(")")
            self.depth -= 1
            return node
        self.term()
        if self.kw("S_INTERSECTS") and self.peek(1).text == "(":
            self.next()
            self.expect_op("(")
            a = self.spatial_arg()
            self.expect_op(",")
            b = self.spatial_arg()
            self.expect_op(")")
            return SIntersects(a, b)
        return self.predicate()

    def predicate(self):
        left = self.scalar()
        negated = False
        if self.kw("NOT") and self.kw("LIKE", "IN", "BETWEEN", k=1):
            self.next()
            negated = True
        if self.kw("LIKE"):
            self.next()
            return Like(left, self.scalar(), negated)
        if self.kw("IN"):
            self.next()
            self.expect_op("(")
            items = [self.scalar()]
            while self.peek().text == ",":
                self.next()
                items.append(self.scalar())
            self.expect_op(")")
            return In(left, tuple(items), negated)
        if self.kw("BETWEEN"):
            self.next()
            low = self.scalar()
            self.expect_kw("AND")
            return Between(left, low, self.scalar(), negated)
        if self.kw("IS"):
            self.next()
            neg = False
            if self.kw("NOT"):
                self.next()
                neg = True
            self.expect_kw("NULL")
            return IsNull(left, neg)
        t = self.peek()
        if t.kind == "op" and t.text in ("=", "<>", "!=", "<", "<=", ">", ">="):
            self.next()
            op = "<>" if t.text == "!=" else t.text
            return Compare(op, left, self.scalar())
        if isinstance(left, Literal) and isinstance(left.value, bool):
            return left
        raise CQL2Error(
            f"expected a comparison, LIKE, IN, BETWEEN or IS NULL at position {t.pos + 1}, "
            f"found {t.text or 'end of filter'!r}"
        )

    def scalar(self):
        t = self.next()
        if t.kind == "str":
            return Literal(t.text[1:-1].replace("''", "'"))
        if t.kind == "num":
            return Literal(_number(t.text, t.pos))
        if t.kind == "op" and t.text in ("-", "+") and self.peek().kind == "num":
            n = self.next()
            v = _number(n.text, n.pos)
            return Literal(-v if t.text == "-" else v)
        if t.kind == "qid":
            return Property(t.text[1:-1].replace('""', '"'))
        if t.kind == "id":
            up = t.text.upper()
            if up in ("TRUE", "FALSE"):
                return Literal(up == "TRUE")
            if up in ("DATE", "TIMESTAMP") and self.peek().text == "(":
                self.next()
                s = self.next()
                if s.kind != "str":
                    raise CQL2Error(f"{up}(...) needs a quoted string at position {s.pos + 1}")
                self.expect_op(")")
                return Literal(_temporal(up, s.text[1:-1]))
            if up in _RESERVED:
                raise CQL2Error(f"unexpected keyword {t.text} at position {t.pos + 1}")
            return Property(t.text)
        raise CQL2Error(
            f"expected a property or a value at position {t.pos + 1}, "
            f"found {t.text or 'end of filter'!r}"
        )

    def spatial_arg(self):
        t = self.peek()
        if t.kind == "id" and t.text.upper() in _WKT_TYPES and self.peek(1).text == "(":
            self.next()
            kind = t.text.upper()
            body = self.coords()
            return GeometryLiteral(_wkt(kind, body, t.pos), tuple(_positions(kind, body)))
        node = self.scalar()
        if not isinstance(node, Property):
            raise CQL2Error(
                f"S_INTERSECTS takes the geometry property and a WKT geometry (position "
                f"{t.pos + 1})"
            )
        return node

    def coords(self, level: int = 1):
        """A parenthesised, possibly nested, list of numbers -> nested Python lists."""
        t = self.peek()
        if level > MAX_WKT_NESTING:
            raise CQL2Error(
                f"coordinates nested deeper than {MAX_WKT_NESTING} levels at position {t.pos + 1}"
            )
        self.expect_op("(")
        items: list = []
        group: list[float] = []
        while True:
            t = self.peek()
            if t.text == "(":
                items.append(self.coords(level + 1))
            elif t.kind == "num" or (t.text in ("-", "+") and self.peek(1).kind == "num"):
                self.next()
                sign = 1
                if t.text in ("-", "+"):
                    sign = -1 if t.text == "-" else 1
                    t = self.next()
                group.append(sign * _number(t.text, t.pos, real=True))
                continue
            elif t.text == ",":
                self.next()
                if group:
                    items.append(group)
                    group = []
                continue
            elif t.text == ")":
                self.next()
                if group:
                    items.append(group)
                return items
            else:
                raise CQL2Error(
                    f"expected coordinates at position {t.pos + 1}, found {t.text or 'end'!r}"
                )


_RESERVED = {"AND", "OR", "NOT", "LIKE", "IN", "BETWEEN", "IS", "NULL"}


def _number(s: str, pos: int, real: bool = False) -> int | float:
    """A number token (an int where it is one, unless ``real``); refused when not finite."""
    try:
        if not real:
            return int(s)
    except ValueError:
        pass
    v = float(s)
    if not math.isfinite(v):
        shown = s if len(s) <= 24 else s[:20] + "..."
        raise CQL2Error(f"number {shown} at position {pos + 1} is out of range")
    return v


def _temporal(kind: str, s: str) -> date | datetime:
    try:
        if kind == "DATE":
            return date.fromisoformat(s)
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise CQL2Error(f"{kind}({s!r}) is not a valid {kind.lower()}") from None


def _positions(kind: str, body: list) -> Iterator[tuple[float, float]]:
    """The (first axis, second axis) numbers of every position of parsed, checked coordinates
    (of a BBOX, its two corners)."""
    if kind == "BBOX":
        nums = body[0] if len(body) == 1 else [v for g in body for v in g]
        yield nums[0], nums[1]
        yield nums[2], nums[3]
        return
    if body and not isinstance(body[0], list):
        yield body[0], body[1]
        return
    for v in body:
        yield from _positions(kind, v)


def _fmt(v: float) -> str:
    return repr(float(v))


def _wkt(kind: str, body: list, pos: int) -> str:
    """Rebuild WKT from parsed numbers; checks the nesting each type needs."""

    def pt(p) -> str:
        if not isinstance(p, list) or len(p) not in (2, 3) or any(isinstance(x, list) for x in p):
            raise CQL2Error(f"{kind} at position {pos + 1}: a position needs 2 or 3 numbers")
        return " ".join(_fmt(x) for x in p[:2])

    def line(ps) -> str:
        return "(" + ", ".join(pt(p) for p in ps) + ")"

    def ring(ps) -> str:
        if len(ps) < 4:
            raise CQL2Error(f"{kind} at position {pos + 1}: a ring needs at least 4 positions")
        return line(ps)

    def nested(x, depth: int) -> list:
        if depth and (not x or not all(isinstance(i, list) for i in x)):
            raise CQL2Error(f"{kind} at position {pos + 1}: wrong nesting of parentheses")
        return x

    try:
        if kind == "BBOX":
            nums = body[0] if len(body) == 1 else [v for g in body for v in g]
            if len(nums) != 4 or any(isinstance(v, list) for v in nums):
                raise CQL2Error(f"BBOX at position {pos + 1} needs 4 numbers")
            x0, y0, x1, y1 = nums
            return (
                f"POLYGON(({_fmt(x0)} {_fmt(y0)}, {_fmt(x1)} {_fmt(y0)}, {_fmt(x1)} {_fmt(y1)}, "
                f"{_fmt(x0)} {_fmt(y1)}, {_fmt(x0)} {_fmt(y0)}))"
            )
        if kind == "POINT":
            return f"POINT({pt(body[0] if len(body) == 1 else [])})"
        if kind == "LINESTRING":
            return f"LINESTRING{line(body)}"
        if kind == "MULTIPOINT":
            pts = [p[0] if len(p) == 1 and isinstance(p[0], list) else p for p in body]
            return "MULTIPOINT(" + ", ".join(f"({pt(p)})" for p in pts) + ")"
        if kind == "POLYGON":
            return "POLYGON(" + ", ".join(ring(r) for r in nested(body, 1)) + ")"
        if kind == "MULTILINESTRING":
            return "MULTILINESTRING(" + ", ".join(line(r) for r in nested(body, 1)) + ")"
        if kind == "MULTIPOLYGON":
            polys = [
                "(" + ", ".join(ring(r) for r in nested(poly, 1)) + ")" for poly in nested(body, 1)
            ]
            return "MULTIPOLYGON(" + ", ".join(polys) + ")"
    except (IndexError, TypeError):
        raise CQL2Error(f"{kind} at position {pos + 1}: malformed coordinates") from None
    raise CQL2Error(f"unsupported geometry {kind}")


def parse(s: str, limits: Limits | None = None):
    """CQL2 text -> AST; raises CQL2Error naming the position of the problem, or the limit
    (``limits``, default the configured ones) that the filter passes."""
    limits = limits or Limits.configured()
    if not s or not s.strip():
        raise CQL2Error("empty filter")
    if len(s) > limits.chars:
        raise CQL2Error(
            f"filter longer than {limits.chars} characters (the limit, setting "
            "tiles.filter_max_chars)"
        )
    if "\x00" in s:
        raise CQL2Error("the filter contains a NUL character")
    return _Parser(s, limits).parse()


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

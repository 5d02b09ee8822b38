"""No disclosure by arithmetic: on the analysed sample city, no sum or difference of the numbers
a public caller gets about an enterprise gives one of its restricted figures.

Public answers collected per enterprise and year: the evaluation lists (JSON, CSV, XLSX), the
enterprise lists (JSON, CSV, XLSX), the 一企一档 dossier, the parcel dossiers of its parcels, the
OGC items of the enterprises collection, the search and the enterprise points of the vector
tiles; plus the points a caller can work out from public indicators and benchmarks
(weight × value ÷ benchmark, weights from docs/EVALUATION.md). Restricted figures (targets), from
the analyst's view of the same answers: the points of 亩均税收, 单位能耗增加值, 单位排放增加值 and
their sum, those indicators' values, SJSJ, ZHNH and PFDL.

Combinations: every sum and difference of every subset of the evaluation's score and points
(public ones and worked-out ones), and every single public number and every sum or difference
of two. A combination (the same fields with the same signs) discloses a target when it gives
it, within rounding, for at least 5 enterprise-years and 1 % of those where both are defined: a
formula an outsider could use. (Over some 20,000 enterprise-years, single chance agreements of
some of the tens of thousands of combinations with some target are to be expected and say
nothing about the others; they are counted and reported, not failed.) A restricted figure of 0
is not a target: every number minus itself is 0.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openpyxl
import pytest
from sqlalchemy import text

from gis.core.rules import get_rules
from gis.economy.evaluation_read import RESTRICTED_INDICATORS

RESTRICTED_FIGURES = ("tax_paid", "energy_tce", "emissions_t")
SKIP_FIELDS = {"year", "as_of", "id"}  # keys and dates, not figures
DOSSIER_EVERY = 10  # every tenth enterprise's dossiers (a spread of ~410 of 4,100)


def _numbers(obj, prefix: str, out: dict[str, float]) -> None:
    """Numeric leaves of a JSON value (booleans and keys excluded), by path."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in SKIP_FIELDS:
                _numbers(v, f"{prefix}.{k}", out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _numbers(v, f"{prefix}[{i}]", out)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        if math.isfinite(obj):
            out[prefix] = float(obj)


def _table_numbers(rows: list[dict], prefix: str, put) -> None:
    for row in rows:
        if row.get("year") in (None, ""):
            continue
        nums = {}
        for k, v in row.items():
            if k in SKIP_FIELDS or v in (None, ""):
                continue
            try:
                x = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(x):
                nums[f"{prefix}.{k}"] = x
        put(row["uscc"], int(float(row["year"])), nums)


def _csv_rows(content: bytes) -> list[dict]:
    """The rows of a bureau CSV keyed by the codes of its second header row (without 合计 and
    the 制表单位 line)."""
    lines = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert lines[-2][0].startswith("合计(")
    return [dict(zip(lines[1], r, strict=True)) for r in lines[2:-2]]


def _xlsx_rows(content: bytes) -> list[dict]:
    """The same from the XLSX: headers on row 3, codes on row 4, 合计 last."""
    ws = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    assert str(rows[-1][0]).startswith("合计(")
    return [dict(zip(rows[3], r, strict=True)) for r in rows[4:-1]]


@pytest.fixture(scope="module")
def collected(sample_server, report_measured):
    """(public numbers, restricted targets, group) per (uscc, year) of the analysed city."""
    t0 = time.monotonic()
    base, engine, token, _ = sample_server
    analyst = {"Authorization": f"Bearer {token}"}
    public: dict[tuple, dict[str, float]] = defaultdict(dict)
    targets: dict[tuple, dict[str, float]] = defaultdict(dict)
    group: dict[tuple, str] = {}

    def put(uscc: str, year: int, nums: dict[str, float]) -> None:
        public[(uscc, year)].update(nums)

    with httpx.Client(base_url=base, timeout=120) as h:

        def get(path: str, headers=None, **params) -> httpx.Response:
            r = h.get(path, params=params, headers=headers)
            assert r.status_code == 200, (path, params, r.text[:300])
            return r

        with engine.connect() as c:
            years = [
                r[0] for r in c.execute(text("SELECT DISTINCT year FROM evaluations ORDER BY 1"))
            ]
        assert len(years) >= 3, years
        for y in years:
            for ev in get("/api/evaluations", analyst, year=y).json()["items"]:
                key = (ev["uscc"], y)
                group[key] = ev["group"]
                t = targets[key]
                for i in RESTRICTED_INDICATORS:
                    if (ev["points"] or {}).get(i) is not None:
                        t[f"points.{i}"] = float(ev["points"][i])
                    if (ev["indicators"] or {}).get(i) is not None:
                        t[f"indicators.{i}"] = float(ev["indicators"][i])
                pts = [float(v) for k, v in (ev["points"] or {}).items()
                       if k in RESTRICTED_INDICATORS and v is not None]  # fmt: skip
                if pts:
                    t["points.restricted_sum"] = sum(pts)
            evs = get("/api/evaluations", year=y).json()["items"]
            weights = {"above": get_rules().evaluation.above_weights,
                       "below": get_rules().evaluation.below_weights}  # fmt: skip
            for ev in evs:
                nums: dict[str, float] = {}
                _numbers(ev, "evaluations", nums)
                for i, v in (ev["indicators"] or {}).items():  # points an outsider works out
                    b = (ev["benchmarks"] or {}).get(i)
                    if v is not None and b and i in weights[ev["group"]]:
                        nums[f"worked_out.{i}"] = weights[ev["group"]][i] * v / b
                put(ev["uscc"], y, nums)
            _table_numbers(_csv_rows(get("/api/evaluations", year=y, format="csv").content),
                           "evaluations.csv", put)  # fmt: skip
            _table_numbers(_xlsx_rows(get("/api/evaluations", year=y, format="xlsx").content),
                           "evaluations.xlsx", put)  # fmt: skip
            ents = get("/api/enterprises", year=y, limit=10000).json()["items"]
            for e in ents:
                if e.get("year") is not None:
                    nums = {}
                    _numbers(e, "enterprises", nums)
                    put(e["uscc"], y, nums)
            _table_numbers(_csv_rows(get("/api/enterprises", year=y, format="csv").content),
                           "enterprises.csv", put)  # fmt: skip
            _table_numbers(_xlsx_rows(get("/api/enterprises", year=y, format="xlsx").content),
                           "enterprises.xlsx", put)  # fmt: skip
        latest = years[-1]

        usccs = sorted({u for u, _ in group})
        spread = usccs[::DOSSIER_EVERY]

        def dossiers(u: str) -> None:
            d = get(f"/api/enterprises/{u}").json()
            assert d["restricted_hidden"] is True
            for ev in d["evaluations"]:
                nums: dict[str, float] = {}
                _numbers(ev, "dossier.evaluations", nums)
                put(u, ev["year"], nums)
            for f in d["figures"]:
                nums = {}
                _numbers(f, "dossier.figures", nums)
                put(u, f["year"], nums)
            for land in d["land"]:
                nums = {}
                _numbers(land, "dossier.land", nums)
                put(u, land["year"], nums)
            nums = {}
            _numbers({k: d[k] for k in ("parcels", "zones", "projects")}, "dossier", nums)
            put(u, latest, nums)
            a = get(f"/api/enterprises/{u}", analyst).json()
            for f in a["figures"]:
                for c in RESTRICTED_FIGURES:
                    if f.get(c) is not None:
                        targets[(u, f["year"])][f"figures.{c}"] = float(f[c])
            for p in [p for p in d["parcels"] if p["parcel_no"]][:3]:
                pd_ = get(f"/api/parcels/{p['parcel_no']}").json()
                for e in pd_.get("enterprises") or []:
                    if e.get("uscc") == u:
                        nums = {}
                        _numbers(e, "parcel_dossier", nums)
                        put(u, latest, nums)
            hits = get("/api/search", q=u).json()["results"]
            assert any(x["id"] == u for x in hits), u
            for hit in (x for x in hits if x["id"] == u):
                nums = {}
                _numbers(hit, "search", nums)
                put(u, latest, nums)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(dossiers, spread))

        feats = get("/ogc/collections/enterprises/items", limit=10000).json()["features"]
        for f in feats:
            nums = {}
            _numbers(f["properties"], "ogc", nums)
            put(f["properties"].get("uscc") or f["id"], latest, nums)

        assert feats and not {"score", "tax_paid"} & set(feats[0]["properties"])
        tile_numbers, tile_props = _tile_numbers(h)
        assert tile_numbers, "no enterprise in the public tiles around the centre"
        assert not {"score", "tax_paid", "tax_per_mu"} & tile_props, tile_props
        for u, nums in tile_numbers.items():
            put(u, latest, nums)

    report_measured(
        f"disclosure: public answers collected in {time.monotonic() - t0:.0f} s "
        f"({len(spread)} enterprises' dossiers)"
    )
    # only enterprise-years that have an evaluation row
    return {k: public[k] for k in group}, dict(targets), group, len(spread)


def _tile_numbers(h: httpx.Client) -> tuple[dict[str, dict[str, float]], set[str]]:
    """Numeric properties of the enterprise points in public tiles around the city's centre,
    and the names of all the properties of those tiles."""
    import mapbox_vector_tile

    out: dict[str, dict[str, float]] = defaultdict(dict)
    names: set[str] = set()
    style = h.get("/tiles/style.json").json()
    layers = [
        s["url"].rsplit("/", 1)[1].removesuffix(".json")
        for s in style["sources"].values()
        if s.get("url", "").endswith(".json")
    ]
    for layer in layers:
        tj = h.get(f"/tiles/{layer}.json").json()
        lon, lat = tj["center"][:2]
        z = min(max(tj.get("minzoom", 0), 13), tj.get("maxzoom", 16))
        n = 2**z
        x = int((lon + 180) / 360 * n)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
        for dx, dy in itertools.product((-1, 0, 1), repeat=2):
            r = h.get(f"/tiles/{layer}/{z}/{x + dx}/{y + dy}.mvt")
            if r.status_code != 200 or not r.content:
                continue
            for name, lay in mapbox_vector_tile.decode(r.content).items():
                for f in lay["features"]:
                    props = f["properties"]
                    names.update(props)
                    if "uscc" in props:
                        nums: dict[str, float] = {}
                        _numbers(props, f"tiles.{name}", nums)
                        out[props["uscc"]].update(nums)
    return out, names


def _distinct(rows: list[dict], fields: list[str]) -> list[str]:
    """``fields`` less the copies (a field with the same value as an earlier one, within
    rounding, on every row: the CSV and XLSX of a list, the dossier's evaluation): a sum with a
    copy is the same sum."""
    seen: set[bytes] = set()
    out = []
    for f in fields:
        col = np.array([r.get(f, np.nan) for r in rows], dtype=float)
        key = np.nan_to_num(col, nan=np.inf).round(4).tobytes()
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _subsets(n: int) -> np.ndarray:
    """Every coefficient vector in {-1, 0, 1}^n but 0: every subset, each with either sign."""
    out = [c for c in itertools.product((-1, 0, 1), repeat=n) if any(c)]
    return np.array(out, dtype=float).reshape(-1, n)


def _target_columns(targets: list[dict]) -> dict[str, np.ndarray]:
    """Each restricted figure over the rows; NaN where it is absent or is 0 within rounding
    (points are given to 4 decimals; any public number minus itself is 0)."""
    out = {}
    for name in sorted({t for tg in targets for t in tg}):
        t = np.array([tg.get(name, np.nan) for tg in targets], dtype=float)
        t[np.abs(t) <= 1e-3] = np.nan
        out[name] = t
    return out


def _close(val: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``val`` gives ``t`` within rounding (points to 4 decimals, a few summed); NaN never."""
    return np.abs(val - t) <= 5e-4 + 1e-6 * np.abs(t)


def _judge(name: str, hits: np.ndarray, defined: np.ndarray, label, found: list) -> int:
    """Combinations that give the target for >= 5 enterprise-years and >= 1 % of those where
    both are defined go to ``found``; returns the other (chance) agreements."""
    bad = (hits >= 5) & (hits >= 0.01 * np.maximum(defined, 1))
    for idx in zip(*np.nonzero(bad), strict=True):
        found.append((name, label(*idx), int(hits[idx]), int(defined[idx])))
    return int(hits[~bad].sum())


def _subset_disclosures(rows, targets, fields: list[str]) -> tuple[list, int]:
    """Every sum and difference of every subset of ``fields`` against every target."""
    coeffs = _subsets(len(fields))
    x = np.array([[r.get(f, np.nan) for f in fields] for r in rows], dtype=float)
    have, xz = ~np.isnan(x), np.nan_to_num(x)
    need = np.abs(coeffs)
    found: list = []
    chance = 0
    for name, t in _target_columns(targets).items():
        use = ~np.isnan(t)
        dfn = (have[use].astype(float) @ need.T) == need.sum(1)
        hit = dfn & _close(xz[use] @ coeffs.T, t[use, None])

        def label(i: int) -> str:
            return " ".join(f"{'+' if c > 0 else '-'}{f}"
                            for c, f in zip(coeffs[i], fields, strict=True) if c)  # fmt: skip

        chance += _judge(name, hit.sum(0), dfn.sum(0), label, found)
    return found, chance


def _pair_disclosures(rows, targets, fields: list[str]) -> tuple[list, int]:
    """Every public number alone, and every sum and difference of two, against every target."""
    x = np.array([[r.get(f, np.nan) for f in fields] for r in rows], dtype=float)
    found: list = []
    chance = 0
    for name, t in _target_columns(targets).items():
        use = ~np.isnan(t)
        xs, ts = x[use], t[use]
        chance += _judge(name, _close(xs, ts[:, None]).sum(0)[None, :],
                         (~np.isnan(xs)).sum(0)[None, :],
                         lambda _, j: f"+{fields[j]}", found)  # fmt: skip
        for op, sign in ((np.add, "+"), (np.subtract, "-")):
            hits = np.zeros((len(fields), len(fields)))
            defined = np.zeros_like(hits)
            for s in range(0, len(xs), 256):
                v = op(xs[s : s + 256, :, None], xs[s : s + 256, None, :])
                hits += _close(v, ts[s : s + 256, None, None]).sum(0)
                defined += (~np.isnan(v)).sum(0)
            np.fill_diagonal(hits, 0)
            if sign == "+":
                hits = np.triu(hits)
            chance += _judge(name, hits, defined,
                             lambda i, j, sg=sign: f"+{fields[i]} {sg}{fields[j]}",
                             found)  # fmt: skip
    return found, chance


@pytest.mark.parametrize("grp", ["above", "below"])
def test_no_public_combination_gives_a_restricted_figure(collected, grp, report_measured):
    public, targets, group, n_dossiers = collected
    keys = sorted(k for k in public if group[k] == grp and targets.get(k))
    assert len(keys) > 100, len(keys)
    rows = [public[k] for k in keys]
    tg = [targets[k] for k in keys]
    # the restricted figures really are absent from every public answer
    for r in rows:
        assert not any(
            any(s in f for s in (*RESTRICTED_INDICATORS, *RESTRICTED_FIGURES)) for f in r
        ), sorted(r)
    assert any(any(f.startswith("dossier.figures") for f in r) for r in rows)
    assert sum(1 for t in tg if "figures.tax_paid" in t) >= n_dossiers // 4
    seen = defaultdict(int)
    for r in rows:
        for f in r:
            seen[f] += 1
    everything = sorted(f for f, n in seen.items() if n >= 5)
    # 1. every subset of the score and its points, with either sign
    # the score as any answer gives it (JSON, CSV, XLSX, dossier: copies), the search's
    # relevance score aside
    for r in rows:
        copies = [v for f, v in r.items() if f.endswith(".score") and not f.startswith("search")]
        if copies:
            r["any.score"] = copies[0]
    family = ["any.score"] if any("any.score" in r for r in rows) else []
    family += [f for f in everything if f.startswith(("evaluations.points.", "worked_out."))]
    assert 2 <= len(family) <= 8, family
    found, chance = _subset_disclosures(rows, tg, family)
    # 2. every public number alone, and every sum or difference of two
    distinct = _distinct(rows, everything)
    found2, chance2 = _pair_disclosures(rows, tg, distinct)
    report_measured(
        f"disclosure ({grp}): {len(keys)} enterprise-years, {len(everything)} public fields "
        f"({len(distinct)} not copies), "
        f"{len(family)} in the score family; chance agreements {chance} + {chance2}"
    )
    assert not found + found2, "public formulas giving restricted figures:\n" + "\n".join(
        f"{name} = {combo} on {n} of {d} enterprise-years"
        for name, combo, n, d in (found + found2)[:15]
    )

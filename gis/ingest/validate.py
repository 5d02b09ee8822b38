"""Field parsing and row checks, vectorised over whole columns.

Each check returns the positions of failing rows with a reason; the pipeline turns them into
report entries (file, row or feature, key, field, reason). Nothing is dropped here.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from gis.core import uscc
from gis.core.layers import DATE_YEARS, NUMBER_MAX, NUMBER_MIN, YEARS, Field, Layer

_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_LIST_SPLIT = r"[;；、,，]"


@dataclass
class Issues:
    """Collected row problems: parallel lists of position, field code and reason."""

    pos: list[int] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, mask: np.ndarray | pd.Series, field_code: str, reason) -> None:
        mask = np.asarray(mask, dtype=bool)
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        self.pos.extend(idx.tolist())
        self.fields.extend([field_code] * len(idx))
        if isinstance(reason, str):
            self.reasons.extend([reason] * len(idx))
        else:
            self.reasons.extend(list(np.asarray(reason, dtype=object)[idx]))

    def bad_positions(self) -> np.ndarray:
        return np.unique(np.asarray(self.pos, dtype=np.int64))


def as_text(s: pd.Series) -> pd.Series:
    """Strings, stripped; empty and missing become None. Integral floats lose their '.0'."""

    def conv(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, pd.Timestamp):
            return v.strftime("%Y-%m-%d")
        t = str(v).strip()
        return t or None

    if pd.api.types.is_string_dtype(s) and s.dtype != object:  # arrow / pandas strings
        t = s.str.strip()
        return t.astype(object).where(t.notna() & (t != ""), None)
    if s.dtype == object:
        sample = s.to_numpy()[:1000]
        if all(isinstance(v, str) or v is None for v in sample):
            try:
                t = s.astype("string").str.strip()
                return t.astype(object).where(t.notna() & (t != ""), None)
            except (TypeError, ValueError):
                pass
    out = s.map(conv).astype(object)
    return out.where(out.notna(), None)


def parse_dates(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Dates as YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD or Excel dates (cells or serial numbers).

    Returns (datetime64 series with NaT for empty, mask of unparsable non-empty values).
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.tz_localize(None).dt.normalize() if s.dt.tz else s.dt.normalize(), np.zeros(
            len(s), bool
        )
    obj = s.astype(object)
    is_ts = obj.map(lambda v: hasattr(v, "year") and hasattr(v, "month"))
    result = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    if is_ts.any():
        result[is_ts] = pd.to_datetime(obj[is_ts].map(lambda v: pd.Timestamp(v)))
    text = as_text(obj.where(~is_ts, None))
    present = text.notna()
    t = text.fillna("").str.replace(r"\.0$", "", regex=True)
    for fmt, pattern in (
        ("%Y-%m-%d", r"^\d{4}-\d{1,2}-\d{1,2}$"),
        ("%Y/%m/%d", r"^\d{4}/\d{1,2}/\d{1,2}$"),
        ("%Y%m%d", r"^\d{8}$"),
    ):
        m = present & t.str.match(pattern) & result.isna()
        if m.any():
            result[m] = pd.to_datetime(t[m], format=fmt, errors="coerce")
    serial = present & t.str.match(r"^\d{1,5}(\.\d+)?$") & result.isna()
    if serial.any():
        days = pd.to_numeric(t[serial], errors="coerce")
        ok = (days > 0) & (days < 80000)
        result[serial & ok.reindex(s.index, fill_value=False)] = _EXCEL_EPOCH + pd.to_timedelta(
            days[ok].astype(int), unit="D"
        )
    bad = (present & result.isna()).to_numpy().copy()
    # implausible years are typing errors, not dates
    years = result.dt.year
    bad |= (result.notna() & ((years < DATE_YEARS[0]) | (years > DATE_YEARS[1]))).to_numpy()
    return result.where(~pd.Series(bad, index=s.index)), bad


def parse_numbers(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Floats; thousands separators allowed. Returns (values, mask of non-empty values that are
    not a finite number: unparsable, NaN, ±inf, or beyond double precision such as 1e400)."""
    if pd.api.types.is_numeric_dtype(s):
        values = s.astype(float)
        bad = np.isinf(values.to_numpy())
        return values.where(~bad), bad
    text = as_text(s)
    present = text.notna()
    cleaned = text.fillna("").str.replace(",", "", regex=False).str.replace("，", "", regex=False)
    values = pd.to_numeric(cleaned.where(present, None), errors="coerce").astype(float)
    bad = (present & ~np.isfinite(values)).to_numpy()
    return values.where(~bad), bad


def implausible_numbers(values: pd.Series) -> np.ndarray:
    """Mask of finite values beyond the figures' magnitudes (``NUMBER_MAX``, ``NUMBER_MIN``)."""
    size = values.abs().to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return (size > NUMBER_MAX) | ((size > 0) & (size < NUMBER_MIN))


_BOOL = {
    "1": True,
    "0": False,
    "TRUE": True,
    "FALSE": False,
    "是": True,
    "否": False,
    "Y": True,
    "N": False,
    "T": True,
    "F": False,
}


def parse_bools(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    text = as_text(s)
    upper = text.map(lambda v: v.upper() if isinstance(v, str) else None)
    values = upper.map(_BOOL)
    bad = (text.notna() & values.isna()).to_numpy()
    return values.astype(object).where(values.notna(), None), bad


def parse_lists(s: pd.Series) -> pd.Series:
    text = as_text(s)
    return text.map(
        lambda v: [p.strip() for p in re.split(_LIST_SPLIT, v) if p.strip()] if v else None
    )


# JDYQ 进度要求 (RW): the forms a deadline may take (docs/TASKS.md, "Deadlines"). Each names the
# last day on which the task may be finished; 长期 / 持续 name none.
DEADLINE_FORMS = (
    "a date YYYY-MM-DD (or YYYY/MM/DD, YYYYMMDD, an Excel date); YYYY年M月[D日][前] or "
    "YYYY年M月底[前]; YYYY年底[前]; a range of years 2018~2020 or 2018-2020 (the end of its "
    "last year); 长期 or 持续 (no deadline)"
)
DEADLINE_FIELDS = ("JDYQ",)
_DATE_TEXT = re.compile(r"^(\d{4}[-/]\d{1,2}[-/]\d{1,2})(?: 00:00:00)?$|^\d{8}$|^\d{5}(?:\.0+)?$")
_MONTH = re.compile(r"^(\d{4})年(\d{1,2})月(?:(\d{1,2})日|(底|末))?前?$")
_YEAR_END = re.compile(r"^(\d{4})年(?:底|末)前?$")
_YEAR_RANGE = re.compile(r"^(\d{4})年?[~～〜\-－—–至到](\d{4})年?$")
_ONGOING = re.compile(r"^(?:长期|持续)(?:坚持|推进|开展|实施)?$")


def _deadline(text: str) -> tuple[date | None, str] | None:
    """(last day, form) of one deadline in a Chinese form, or None when it is not one."""
    t = re.sub(r"\s+", "", text)
    if _ONGOING.match(t):
        return None, "ongoing"
    try:
        if m := _MONTH.match(t):
            y, mo = int(m.group(1)), int(m.group(2))
            day = int(m.group(3)) if m.group(3) else calendar.monthrange(y, mo)[1]
            due, form = date(y, mo, day), ("day" if m.group(3) else "month")
        elif m := _YEAR_END.match(t):
            due, form = date(int(m.group(1)), 12, 31), "year_end"
        elif m := _YEAR_RANGE.match(t):
            first, last = int(m.group(1)), int(m.group(2))
            if first > last:
                return None
            due, form = date(last, 12, 31), "year_range"
        else:
            return None
    except (ValueError, calendar.IllegalMonthError):
        return None
    if not DATE_YEARS[0] <= due.year <= DATE_YEARS[1]:
        return None
    return due, form


def parse_deadlines(s: pd.Series) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Deadlines (JDYQ 进度要求) in the forms of ``DEADLINE_FORMS``: (the last day on which the
    task may be finished, a ``datetime.date`` or None; the form: ``date``, ``day``, ``month``,
    ``year_end``, ``year_range``, ``ongoing`` or None when empty; mask of non-empty values in no
    form). Dates in the contract's forms are read by :func:`parse_dates`."""
    values = as_text(s).to_numpy()
    due = pd.Series([None] * len(s), index=s.index, dtype=object)
    form = pd.Series([None] * len(s), index=s.index, dtype=object)
    bad = np.zeros(len(s), bool)
    is_date = np.array([isinstance(v, str) and bool(_DATE_TEXT.match(v)) for v in values], bool)
    if is_date.any():
        texts = [v.replace(" 00:00:00", "") for v in values[is_date]]
        dates, _ = parse_dates(pd.Series(texts, dtype=object))
        for pos, d in zip(np.flatnonzero(is_date), dates, strict=True):
            if pd.isna(d):
                bad[pos] = True
            else:
                due.iat[pos], form.iat[pos] = d.date(), "date"
    for pos in np.flatnonzero(~is_date):
        if values[pos] is None:
            continue
        found = _deadline(values[pos])
        if found is None:
            bad[pos] = True
        else:
            due.iat[pos], form.iat[pos] = found
    return due, form, bad


# Field-specific shape rules beyond the type (contract: codes of known length).
_PATTERNS = {
    "XZQDM": (r"^\d{6}$", "must be a 6-digit division code"),
    "HYDM": (r"^\d{4}$", "must be a 4-digit GB/T 4754-2017 industry class"),
}


def parse_layer(df: pd.DataFrame, layer: Layer, issues: Issues) -> pd.DataFrame:
    """Typed frame with English column names; every problem goes into ``issues``.

    Missing optional columns become empty; missing required columns are the caller's check.
    """
    out: dict[str, pd.Series] = {}
    n = len(df)
    for f in layer.fields:
        raw = (
            df[f.code]
            if f.code in df.columns
            else pd.Series([None] * n, index=df.index, dtype=object)
        )
        out[f.column] = _parse_field(raw, f, issues)
    return pd.DataFrame(out, index=df.index)


def _parse_field(raw: pd.Series, f: Field, issues: Issues) -> pd.Series:
    if f.type == "date":
        values, bad = parse_dates(raw)
        issues.add(
            bad, f.code, "unparsable date (use YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD or an Excel date)"
        )
    elif f.type in ("float", "int"):
        values, bad = parse_numbers(raw)
        issues.add(bad, f.code, "not a number")
        odd = implausible_numbers(values)
        issues.add(
            odd,
            f.code,
            f"out of range: a figure is 0 or between {NUMBER_MIN:g} and {NUMBER_MAX:g} in size "
            "(in the field's unit); check the unit",
        )
        values = values.where(~odd)  # reported: no further reasons, no cast of 1e20 to int
        if f.type == "int":
            frac = values.notna() & (values != values.round())
            issues.add(frac.to_numpy(), f.code, "not a whole number")
            values = values.round().astype("Int64")
            if f.code == "ND":
                yr = values.notna() & ((values < YEARS[0]) | (values > YEARS[1]))
                issues.add(yr.to_numpy(dtype=bool), f.code, "not a plausible year")
    elif f.type == "bool":
        values, bad = parse_bools(raw)
        issues.add(bad, f.code, "must be 1 or 0")
    elif f.type == "list":
        values = parse_lists(raw)
        if f.code == "FMQD":
            bad = values.map(lambda v: bool(v) and not all(re.fullmatch(r"\d{2,4}", x) for x in v))
            issues.add(
                bad.to_numpy(dtype=bool),
                f.code,
                "negative list must be GB/T 4754 codes of 2 to 4 digits separated by ;",
            )
    else:
        values = as_text(raw)
        if f.type == "uscc":
            values = values.map(lambda v: v.upper() if isinstance(v, str) else v)
            present = values.notna().to_numpy()
            ok = uscc.valid_mask(values.to_numpy())
            wrong_len = present & (
                values.map(lambda v: len(v) if isinstance(v, str) else 18).to_numpy() != 18
            )
            issues.add(wrong_len, f.code, "USCC must have 18 characters")
            issues.add(
                present & ~ok & ~wrong_len, f.code, "bad USCC check character (GB 32100-2015)"
            )
        elif f.code in _PATTERNS:
            pattern, reason = _PATTERNS[f.code]
            bad = values.notna() & ~values.fillna("").str.match(pattern)
            issues.add(bad.to_numpy(), f.code, reason)
        elif f.code in DEADLINE_FIELDS:
            _, _, bad = parse_deadlines(values)
            issues.add(
                bad,
                f.code,
                values.map(lambda v: f"{v!r} is not a deadline; use {DEADLINE_FORMS}"),
            )
        if f.choices:
            bad = values.notna() & ~values.isin(f.choices)
            issues.add(
                bad.to_numpy(),
                f.code,
                values.map(lambda v: f"{v!r} is not one of {' / '.join(f.choices)}"),
            )
    if f.required:
        missing = as_text(raw).isna()
        issues.add(np.asarray(missing, dtype=bool), f.code, "required field is empty")
    return values


# ---- checks that need the database, per layer (the pipeline runs them with the references) ----


def check_targets(conn, typed: pd.DataFrame, issues: Issues) -> None:
    """MB 目标: DM names a known district (XZQDM) when JB is 区县 and a known platform (PTDM)
    when JB is 平台; a district-only indicator (工业增加值占GDP比重: GDP is a district's) is
    refused on a platform; MBZ is a number ≥ 0 in the indicator's unit, a percentage at most 100
    (gis/management/targets.py ``indicators``)."""
    from sqlalchemy import text

    from gis.management.targets import ZONE_TABLES, indicators

    meta = indicators()
    level, zone, zb, value = typed.level, typed.zone_code, typed.indicator, typed.target_value
    for lv, table in ZONE_TABLES.items():
        mine = (level == lv) & zone.notna()
        if not mine.any():
            continue
        known = set(
            conn.execute(
                text(f"SELECT code FROM {table} WHERE code = ANY(CAST(:c AS text[]))"),
                {"c": sorted(set(zone[mine].astype(str)))},
            ).scalars()
        )
        bad = mine & ~zone.isin(known)
        kind = "district (XZQDM of layer XZQ)" if lv == "区县" else "platform (PTDM of layer PT)"
        issues.add(
            bad.to_numpy(),
            "DM",
            zone.map(
                lambda v, k=kind, lv=lv: (
                    f"{v!r} is not a known {k}: JB {lv} needs one; import it first or correct DM"
                )
            ).to_numpy(),
        )
    district_only = {z for z, m in meta.items() if m.district_only}
    bad = (level == "平台") & zb.isin(district_only)
    issues.add(
        bad.to_numpy(),
        "ZB",
        zb.map(
            lambda v: (
                f"{v} is a district's indicator only (it needs the district's GDP from "
                "TJ): set it for JB 区县, not 平台"
            )
        ).to_numpy(),
    )
    negative = value.notna() & (value < 0)
    issues.add(negative.to_numpy(), "MBZ", "target value must be ≥ 0")
    percent = zb.map(lambda v: v in meta and meta[v].unit == "%").astype(bool)
    over = value.notna() & percent & (value > 100)
    issues.add(
        over.to_numpy(),
        "MBZ",
        "a percentage is written as percent, 0 to 100 (35 for 35 %), not above 100",
    )


# layer code -> its checks against the database (after the row checks, before anything loads)
DATABASE_CHECKS = {"MB": check_targets}

"""淘汰落后产能 candidates (DOMAIN_RULES §6) and 不达标 flags (BD), read live from the evaluation.

A candidate for year Y: an enterprise in a key industry (paper 22, chemicals 26, textiles 17,
dyeing 1713/1723/1733/1743/1752, building materials 30; GB/T 4754-2017 prefixes configured in
``[backward_capacity]``) whose class in Y is D, or C with a failed standard (BD) in Y. Each comes
with the land (亩) its exit would free: its ``enterprise_land`` for Y (parcels with their shares,
or declared YDMJ), and its flags. Nothing is stored: BD imports need no recomputation.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from gis.core.rules import BackwardCapacityRules

RULE = "§6 淘汰落后产能: key industry and class D, or class C with a failed standard (BD)"


def _industry_case(rules: BackwardCapacityRules) -> str:
    """SQL naming the first matching key industry of ``e.industry_code`` (NULL if none)."""
    whens = []
    # longest prefixes first, so dyeing 1713 wins over textiles 17
    pairs = sorted(
        ((p, name) for name, ps in rules.industries.items() for p in ps),
        key=lambda x: -len(x[0]),
    )
    for prefix, name in pairs:
        safe_p, safe_n = prefix.replace("'", ""), name.replace("'", "")
        whens.append(f"WHEN v.industry_code LIKE '{safe_p}%' THEN '{safe_n}'")
    return "CASE " + " ".join(whens) + " END" if whens else "NULL"


def candidates(conn: Connection, year: int, rules: BackwardCapacityRules) -> list[dict]:
    """The candidate list for ``year``, largest land first."""
    rows = conn.execute(
        text(
            f"""
            SELECT * FROM (
                SELECT v.uscc, v.name, v.industry_code, {_industry_case(rules)} AS industry,
                       v.year, v."group", v.class, v.score, v.rank, v.group_size,
                       v.district_code, v.platform_code, v.corridor_code,
                       el.area_mu, el.area_m2, el.basis AS land_basis,
                       el.parcel_nos, el.parcel_shares,
                       coalesce(f.kinds, '{{}}') AS failed_standards, f.notes
                FROM evaluations v
                LEFT JOIN enterprise_land el ON el.year = v.year AND el.uscc = v.uscc
                LEFT JOIN (
                    SELECT uscc, array_agg(kind ORDER BY kind) AS kinds,
                           array_agg(note ORDER BY kind) AS notes
                    FROM failed_standards WHERE year = :year GROUP BY uscc
                ) f ON f.uscc = v.uscc
                WHERE v.year = :year
                  AND (v.class = ANY(:cls)
                       OR (v.class = ANY(:cls_f) AND f.kinds IS NOT NULL))
            ) x
            WHERE industry IS NOT NULL
            ORDER BY area_mu DESC NULLS LAST, uscc
            """
        ),
        {
            "year": year,
            "cls": rules.classes,
            "cls_f": rules.classes_with_failed_standard,
        },
    ).all()
    out = []
    for r in rows:
        d = dict(r._mapping)
        d["failed_standards"] = list(d["failed_standards"] or [])
        d["parcel_nos"] = list(d["parcel_nos"] or [])
        d["parcel_shares"] = list(d["parcel_shares"] or [])
        d["notes"] = [n for n in (d.pop("notes") or []) if n]
        d["reason"] = (
            f"class {d['class']} in {year}"
            + (
                f" with failed standard {'、'.join(d['failed_standards'])}"
                if d["failed_standards"]
                else ""
            )
            + f", key industry {d['industry']} ({d['industry_code']})"
        )
        d["rule"] = RULE
        out.append(d)
    return out


def flags(conn: Connection, uscc: str | None = None, year: int | None = None) -> list[dict]:
    """不达标 flags (BD): uscc, year, kind, note, batch."""
    rows = conn.execute(
        text(
            """
            SELECT uscc, year, kind, note, batch_id FROM failed_standards
            WHERE (CAST(:u AS text) IS NULL OR uscc = :u)
              AND (CAST(:y AS int) IS NULL OR year = :y)
            ORDER BY uscc, year, kind
            """
        ),
        {"u": uscc, "y": year},
    ).all()
    return [dict(r._mapping) for r in rows]

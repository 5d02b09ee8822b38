"""Which enterprises count as featured (特色), high-tech (高技术) and in a platform (§7 四提升).

- in a platform: the enterprise has a primary platform (the linkage's ``enterprise_platform``
  link, ``is_primary``);
- featured: its industry (QY HYDM, GB/T 4754-2017) starts with a prefix of one of its primary
  platform's featured industries (PT TSCY names, mapped to prefixes by
  ``[indicators.featured_industry_codes]`` in rules.toml);
- high-tech: its industry starts with one of ``[indicators.high_tech_prefixes]`` (国家统计局
  《高技术产业（制造业）分类（2017）》, abridged).

The flags are stored with each enterprise-year's land (``enterprise_land.featured``,
``hightech``; in a platform is ``platform_code IS NOT NULL``) by gis/economy/per_mu.py, which
keeps each zone's GYZCZ of flagged enterprises in ``zone_sums`` (``out_featured``,
``out_hightech``, ``out_platform``); the §7 output shares divide those by the zone's GYZCZ.
"""

from __future__ import annotations

from gis.core.rules import IndicatorRules


def _prefix_values(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return "SELECT NULL::text AS name, NULL::text AS prefix WHERE false"
    rows = ", ".join(f"('{a.replace(chr(39), '')}', '{b.replace(chr(39), '')}')" for a, b in pairs)
    return f"SELECT * FROM (VALUES {rows}) v(name, prefix)"


def flags_sql(rules: IndicatorRules, enterprises: str | None = None) -> str:
    """A SELECT of (uscc, featured, hightech) of every enterprise (QY), or of those in
    ``enterprises`` (a query of USCC). In a platform is its primary platform link, which
    ``enterprise_land.platform_code`` records."""
    featured = _prefix_values(
        [(n, pfx) for n, pfxs in rules.featured_industry_codes.items() for pfx in pfxs]
    )
    hightech = _prefix_values([("", pfx) for pfx in rules.high_tech_prefixes])
    only = f"WHERE e.uscc IN ({enterprises})" if enterprises else ""
    return f"""
        WITH fp AS (  -- each platform's featured prefixes as LIKE patterns
            SELECT pt.code, array_agg(f.prefix || '%') AS pats
            FROM platforms pt CROSS JOIN LATERAL unnest(pt.featured_industries) n
            JOIN ({featured}) f ON f.name = trim(n)
            GROUP BY pt.code
        )
        SELECT e.uscc, coalesce(e.industry_code LIKE ANY (fp.pats), false) AS featured,
            coalesce(e.industry_code LIKE ANY (
                ARRAY(SELECT h.prefix || '%' FROM ({hightech}) h)), false) AS hightech
        FROM enterprises e
        LEFT JOIN links zp ON zp.kind = 'enterprise_platform'
             AND zp.from_key = e.uscc AND zp.is_primary AND zp.to_key IS NOT NULL
        LEFT JOIN fp ON fp.code = zp.to_key
        {only}
    """

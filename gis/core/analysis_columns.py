"""The figure columns of ``per_mu`` (gis/core/analysis_models.py builds the table from them).

Kept apart from the table definitions so that gis/economy/per_mu.py, which only needs the names,
does not load SQLAlchemy's table machinery with GeoAlchemy2 and Shapely (a fifth of a second at
the start of every ``landlink evaluate``).
"""

from __future__ import annotations

SUM_COLUMNS = (
    "gross_output",  # 万元
    "revenue",  # 万元
    "value_added",  # 万元
    "tax_paid",  # 万元
    "energy_tce",  # tce
    "emissions_t",  # t
    "rd_spending",  # 万元
    "employees",  # persons
)
# the sums a zone's figures are made of: SUM_COLUMNS, and the numerators and denominators of the
# ratios that count only enterprises reporting the other figure (GYZJZ of those with ZHNH > 0,
# with PFDL > 0, with CYRS > 0; YFFY and YYSR of those with both)
ALLOCATED_COLUMNS = SUM_COLUMNS + ("va_e", "va_p", "va_l", "rd_r", "rev_r")
# a zone's GYZCZ from the enterprises flagged featured, high-tech, in a platform
# (gis/economy/industry_flags.py): the numerators of the §7 output shares, kept per zone only
SHARE_COLUMNS = ("out_featured", "out_hightech", "out_platform")
RATIO_COLUMNS = (
    "output_per_mu",  # 亩均产值 GYZCZ/亩, 万元/亩
    "revenue_per_mu",  # 亩均营业收入 YYSR/亩, 万元/亩
    "va_per_mu",  # 亩均增加值 GYZJZ/亩, 万元/亩
    "tax_per_mu",  # 亩均税收 SJSJ/亩, 万元/亩
    "va_per_energy",  # 单位能耗增加值 GYZJZ/ZHNH, 万元/tce
    "va_per_emission",  # 单位排放增加值 GYZJZ/PFDL, 万元/t
    "labour_productivity",  # 全员劳动生产率 GYZJZ/CYRS, 万元/人
    "rd_intensity",  # R&D 强度 YFFY/YYSR, %
)
RESTRICTED_COLUMNS = (
    "tax_paid",
    "energy_tce",
    "emissions_t",
    "tax_per_mu",
    "va_per_energy",
    "va_per_emission",
)

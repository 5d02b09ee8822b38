"""Tables of the project—land—output linkage and the 亩均论英雄 evaluation (0003).

Derived tables hold the *current* figures: every run replaces them whole (they follow the data,
DOMAIN_RULES preamble), and each row names the run (``analysis_runs``: as_of, rules hash, what
it read, counts, time), the rule that produced it and the figures it used.

Units: areas m² from EPSG:4549 geometry, 亩 = m² × 0.0015; money 万元; energy tce; emissions t.
Written by gis/economy/linkage.py, gis/economy/per_mu.py, gis/economy/evaluation.py and
gis/economy/indicators.py.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from gis.core.analysis_columns import (  # noqa: F401  (re-exported for the readers)
    ALLOCATED_COLUMNS,
    RATIO_COLUMNS,
    RESTRICTED_COLUMNS,
    SHARE_COLUMNS,
    SUM_COLUMNS,
)
from gis.core.models import metadata

LINK_KINDS = (
    "enterprise_parcel",
    "supply_parcel",
    "project_supply",
    "project_parcel",
    "parcel_district",
    "parcel_platform",
    "parcel_corridor",
    "enterprise_district",
    "enterprise_platform",
    "enterprise_corridor",
)
LINK_METHODS = ("key", "contains", "nearest", "overlap")
LEVELS = ("enterprise", "parcel", "platform", "district", "corridor")
# the evaluation's groups (规上 above designated size, 规下 below), in the order lists show them
EVALUATION_GROUPS = ("above", "below")

analysis_runs = Table(
    "analysis_runs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("kind", Text, nullable=False),  # link | evaluate
    Column("as_of", Date, nullable=False),
    Column("config_hash", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("trigger", Text, nullable=False),  # cli | api | import:<layer>:<batch>
    Column("counts", JSONB, nullable=False, server_default="{}"),
    Column("notes", JSONB, nullable=False, server_default="[]"),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("seconds", Double),
)

# One row per link, and one per record that could not be linked (to_key NULL, with the reason).
# from_key NULL: a record of the target side that nothing links to (e.g. a parcel no supply
# record covers), with the reason.
links = Table(
    "links",
    metadata,
    Column("kind", Text, nullable=False),
    Column("from_key", Text),
    Column("to_key", Text),
    Column("method", Text),  # key | contains | nearest | overlap (NULL when unlinked)
    Column("distance_m", Double),  # nearest: metres from the point to the parcel
    Column("share", Double),  # overlap: share of the from-record's area (0-1)
    Column("is_primary", Boolean, nullable=False, server_default="true"),  # largest share
    Column("reason", Text),  # why a record is unlinked
    Column("rule", Text, nullable=False),
    Column("run_id", BigInteger, nullable=False),
    Column("as_of", Date, nullable=False),
    CheckConstraint(f"kind IN {LINK_KINDS}", name="kind"),
    CheckConstraint(f"method IS NULL OR method IN {LINK_METHODS}", name="method"),
    Index("ix_links_kind_from", "kind", "from_key"),
    Index("ix_links_kind_to", "kind", "to_key"),
)

# An enterprise's land per year (§Units): parcel shares, else declared YDMJ, else none.
enterprise_land = Table(
    "enterprise_land",
    metadata,
    Column("year", Integer, nullable=False),
    Column("uscc", Text, nullable=False),
    Column("area_m2", Double),
    Column("area_mu", Double),
    Column("basis", Text, nullable=False),  # parcels | declared | none
    # the parcels it occupies and, for each, the share of the parcel's area that is its land
    Column("parcel_nos", ARRAY(Text), nullable=False, server_default="{}"),
    Column("parcel_shares", ARRAY(Double), nullable=False, server_default="{}"),
    Column("reason", Text),  # basis none: why
    # its primary zones (links enterprise_<zone>), as counted in the zones' n_enterprises
    Column("district_code", Text),
    Column("platform_code", Text),
    Column("corridor_code", Text),
    # its industry flags as its GYZCZ was counted in the zones' output shares
    # (gis/economy/industry_flags.py; in a platform: platform_code above)
    Column("featured", Boolean, nullable=False, server_default="false"),
    Column("hightech", Boolean, nullable=False, server_default="false"),
    Column("rule", Text, nullable=False),
    Column("run_id", BigInteger, nullable=False),
    Column("as_of", Date, nullable=False),
    PrimaryKeyConstraint("year", "uscc", name="pk_enterprise_land"),
    CheckConstraint("basis IN ('parcels', 'declared', 'none')", name="basis"),
    Index("ix_enterprise_land_uscc", "uscc"),
)

# Per-mu figures of every enterprise, parcel, platform, district and corridor and year
# (columns in gis/core/analysis_columns.py).
_SUMS, _RATIOS = SUM_COLUMNS, RATIO_COLUMNS

per_mu = Table(
    "per_mu",
    metadata,
    Column("level", Text, nullable=False),
    Column("code", Text, nullable=False),  # USCC, DKBH, PTDM, XZQDM or ZLDM
    Column("year", Integer, nullable=False),
    Column("area_m2", Double),
    Column("area_mu", Double),
    Column("n_enterprises", Integer, nullable=False, server_default="0"),
    *[Column(c, Double) for c in _SUMS],
    *[Column(c, Double) for c in _RATIOS],
    Column("rule", Text, nullable=False),
    Column("run_id", BigInteger, nullable=False),
    Column("as_of", Date, nullable=False),
    PrimaryKeyConstraint("level", "code", "year", name="pk_per_mu"),
    CheckConstraint(f"level IN {LEVELS}", name="level"),
    Index("ix_per_mu_level_year", "level", "year"),
)

# Each enterprise-year's land in each zone it has land in (the one allocation of enterprise land
# to zones, gis/economy/per_mu.zone_land_sql): m² from EPSG:4549 areas. Its figures go to the
# zone in proportion land_m2 / enterprise_land.area_m2.
zone_allocations = Table(
    "zone_allocations",
    metadata,
    Column("level", Text, nullable=False),  # district | platform | corridor
    Column("code", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("uscc", Text, nullable=False),
    Column("land_m2", Double, nullable=False),
    PrimaryKeyConstraint("level", "code", "year", "uscc", name="pk_zone_allocations"),
    Index("ix_zone_allocations_uscc_year", "uscc", "year"),
)

# A zone-year's sums of the allocated figures, exact (numeric): kept by adding what a change
# brings and taking away what it removes, which equals summing afresh. ``n``: allocations (a
# zone-year with none has no per_mu row); ``n_<column>``: those whose figure is reported (a sum
# of none is NULL, not 0).
zone_sums = Table(
    "zone_sums",
    metadata,
    Column("level", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("n", Integer, nullable=False),
    Column("land_m2", Numeric, nullable=False),
    *(Column(c, Numeric) for c in ALLOCATED_COLUMNS + SHARE_COLUMNS),
    *(Column(f"n_{c}", Integer, nullable=False) for c in ALLOCATED_COLUMNS + SHARE_COLUMNS),
    # enterprises with land whose primary zone it is (per_mu's n_enterprises)
    Column("n_enterprises", Integer, nullable=False),
    PrimaryKeyConstraint("level", "code", "year", name="pk_zone_sums"),
)

# The A/B/C/D evaluation (§2), one row per enterprise with output (CC) in the year, in two
# tables: ``evaluation_rows``, what the row is about (land, the indicator values as shown, why it
# is not evaluated or graded, zones), and ``evaluation_ranking``, what ranks it (group, whether
# evaluated and graded, the indicator values it is scored on) and its class. Read through the
# view ``evaluations`` (migrations 0020, 0026), which joins the two and adds the score, points,
# benchmarks and group size from ``evaluation_groups`` and the rank, computed when read.
evaluation_rows = Table(
    "evaluation_rows",
    metadata,
    Column("year", Integer, nullable=False),
    Column("uscc", Text, nullable=False),
    Column("name", Text),
    Column("industry_code", Text),
    Column("area_mu", Double),
    Column("land_basis", Text),
    Column("indicators", JSONB, nullable=False, server_default="{}"),  # name -> value
    Column("missing", JSONB, nullable=False, server_default="[]"),  # names scored at the mean
    Column("not_evaluated_reason", Text),
    Column("not_graded_reason", Text),
    # the supply records that hold it "still building" (named in not_graded_reason)
    Column("building_supply_nos", ARRAY(Text), nullable=False, server_default="{}"),
    Column("district_code", Text),
    Column("platform_code", Text),
    Column("corridor_code", Text),
    Column("rule", Text, nullable=False),
    Column("run_id", BigInteger, nullable=False),
    Column("as_of", Date, nullable=False),
    PrimaryKeyConstraint("year", "uscc", name="pk_evaluation_rows"),
    Index("ix_evaluation_rows_uscc", "uscc"),
    Index("ix_evaluation_rows_building", "building_supply_nos", postgresql_using="gin"),
)

# The ranking's inputs and results, one row per row of ``evaluation_rows``: narrow, and with half
# of each page left free (fillfactor 50) so that rows rewritten are updated in place.
evaluation_ranking = Table(
    "evaluation_ranking",
    metadata,
    Column("year", Integer, nullable=False),
    Column("uscc", Text, nullable=False),
    Column("group", Text, nullable=False),  # above (规上) | below (规下)
    Column("evaluated", Boolean, nullable=False),
    Column("graded", Boolean, nullable=False),
    # the enterprise's per-mu ratios of the year (its ``per_mu`` row), the indicator values
    *(Column(c, Double) for c in RATIO_COLUMNS),
    Column("class", Text),  # A | B | C | D, NULL when not graded / not evaluated
    # the score under the group-year's base coefficients (``evaluation_score_bases``), graded
    # rows only: within ε·spread + μ of the score now, it finds the rows a change may reclass
    Column("base_score", Double),
    PrimaryKeyConstraint("year", "uscc", name="pk_evaluation_ranking"),
    CheckConstraint(f'"group" IN {EVALUATION_GROUPS}', name="group"),
    CheckConstraint("class IS NULL OR class IN ('A', 'B', 'C', 'D')", name="class"),
    Index("ix_evaluation_ranking_uscc", "uscc"),
    Index(
        "ix_evaluation_ranking_base", "year", "group", "base_score", postgresql_where=text("graded")
    ),
    Index(
        "ix_evaluation_ranking_class_base",
        "year",
        "group",
        "class",
        "base_score",
        postgresql_where=text("graded"),
    ),
    postgresql_with={"fillfactor": 50},
)

# Per year and group, what the base scores of ``evaluation_ranking`` were computed with: each
# indicator's coefficient (weight ÷ benchmark, 0 when the benchmark is not positive; NULL: not
# the group's indicator) and the mean points a missing figure scored, and ``spread``, an upper
# bound of Σ |coefficient × value| over the graded rows scored against them. Written by the
# evaluation when it scores a group-year whole (docs/EVALUATION.md, "How classes are kept").
evaluation_score_bases = Table(
    "evaluation_score_bases",
    metadata,
    Column("year", Integer, nullable=False),
    Column("group", Text, nullable=False),
    *(Column(f"c_{c}", Double) for c in RATIO_COLUMNS),
    *(Column(f"m_{c}", Double) for c in RATIO_COLUMNS),
    Column("spread", Double, nullable=False),
    PrimaryKeyConstraint("year", "group", name="pk_evaluation_score_bases"),
)

# Per year and group, the graded rows of ``evaluation_ranking`` whose base score falls in each
# bucket of a quarter point (SQL ``evaluation_score_bucket``: floor(4 × base score), rows
# [k/4, (k+1)/4)), buckets holding none left out. Kept by statement triggers on
# ``evaluation_ranking`` (migration 0030), so every writer of it keeps them; the classes' order
# statistics walk them instead of the index (docs/EVALUATION.md, "How classes are kept").
evaluation_score_counts = Table(
    "evaluation_score_counts",
    metadata,
    Column("year", Integer, nullable=False),
    Column("group", Text, nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("n", Integer, nullable=False),
    PrimaryKeyConstraint("year", "group", "bucket", name="pk_evaluation_score_counts"),
    Index("ix_evaluation_score_counts_empty", "year", postgresql_where=text("n = 0")),
)

# One row per year and group of the evaluation: weights (NULL: not the group's indicator),
# benchmarks (the mean over the evaluated), the mean points a missing figure scores where the
# rules say so, and the number graded.
evaluation_groups = Table(
    "evaluation_groups",
    metadata,
    Column("year", Integer, nullable=False),
    Column("group", Text, nullable=False),
    Column("n_graded", Integer, nullable=False),
    *(Column(f"{p}_{c}", Double) for c in RATIO_COLUMNS for p in ("w", "b", "m")),
    # the sums the benchmarks are made of, kept by differences (exact): rows, and per indicator
    # the sum ``s_`` (numeric) and number ``c_`` of evaluated rows that have it
    Column("n_rows", Integer, nullable=False),
    *(Column(f"s_{c}", Numeric) for c in RATIO_COLUMNS),
    *(Column(f"c_{c}", Integer, nullable=False) for c in RATIO_COLUMNS),
    Column("benchmarks", JSONB, nullable=False),  # name -> mean rounded to 1e-6, as shown
    Column("rule", Text, nullable=False),
    Column("run_id", BigInteger, nullable=False),
    Column("as_of", Date, nullable=False),
    PrimaryKeyConstraint("year", "group", name="pk_evaluation_groups"),
)

# §7 indicators per district, platform and corridor and year, long format.
area_indicators = Table(
    "area_indicators",
    metadata,
    Column("level", Text, nullable=False),  # district | platform | corridor
    Column("code", Text, nullable=False),
    Column("name", Text),
    Column("year", Integer, nullable=False),
    Column("indicator", Text, nullable=False),
    Column("category", Text, nullable=False),  # 两底线 | 两降低 | 四提升
    Column("value", Double),
    Column("unit", Text, nullable=False),
    Column("previous", Double),  # the value of the year before
    Column("change", Double),  # value - previous
    Column("rank", Integer),  # among the level's zones that year, 1 = best
    Column("better", Text, nullable=False),  # higher | lower
    Column("restricted", Boolean, nullable=False, server_default="false"),
    Column("figures", JSONB, nullable=False, server_default="{}"),  # numerator, denominator
    Column("rule", Text, nullable=False),
    Column("run_id", BigInteger, nullable=False),
    Column("as_of", Date, nullable=False),
    PrimaryKeyConstraint("level", "code", "year", "indicator", name="pk_area_indicators"),
)

TABLES = (
    links, enterprise_land, per_mu, evaluation_rows, evaluation_ranking, evaluation_groups,
    evaluation_score_bases, area_indicators,
)  # fmt: skip

"""The evaluation's base scores counted by bucket, kept by the database

Revision ID: 0030_evaluation_score_counts
Revises: 0029_areas_to_the_hundredth
Create Date: 2026-12-06

The classes are kept by reading, for each cut of a group-year a change may move, the j-th
highest base score and how many base scores lie above a value (docs/EVALUATION.md, "How
classes are kept"). Both were walks of the base-score index from its nearer end: about j rows,
a quarter of the group-year for the A/B cut. On the 581,560-parcel city that was most of a
one-row change's evaluation (0.30 s; 1.22 s in the first change after a re-judging of the three
lands).

``evaluation_score_counts``: per year and group, the graded rows whose base score falls in each
bucket of a quarter point (``evaluation_score_bucket(base_score)``; only buckets that hold a row).
Statement triggers on ``evaluation_ranking`` add the new rows and subtract the old ones of every
INSERT, UPDATE and DELETE, so the counts follow every writer. The walk now reads these counts to
the bucket that holds the j-th score, then that bucket's rows in the index.

Buckets are ``floor(4 × base score)``, limited to ±2⁴⁰ (scores average 100; the limit only
keeps the integer in range): multiplying by a power of two is exact in floating point, so a
bucket's rows are exactly the base scores in [k/4, (k+1)/4), which the index reads as a range.
"""

import sqlalchemy as sa
from alembic import op

revision = "0030_evaluation_score_counts"
down_revision = "0029_areas_to_the_hundredth"
branch_labels = None
depends_on = None

FUNCTIONS = """
CREATE FUNCTION evaluation_score_bucket(s double precision) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN floor(least(greatest(s * 4, -1099511627776), 1099511627776))::bigint;

CREATE FUNCTION evaluation_score_bucket_low(k bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN k <= -1099511627776 THEN '-Infinity'::double precision
            ELSE k::double precision / 4 END;

CREATE FUNCTION evaluation_score_bucket_high(k bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN k >= 1099511627776 THEN 'Infinity'::double precision
            ELSE (k + 1)::double precision / 4 END;

CREATE FUNCTION evaluation_score_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM evaluation_score_counts;
        RETURN NULL;
    END IF;
    -- each statement's rows added (+1) and removed (-1) by bucket, applied in key order so
    -- that two writers lock the buckets they share in the same order
    IF TG_OP = 'INSERT' THEN
        INSERT INTO evaluation_score_counts AS c (year, "group", bucket, n)
        SELECT year, "group", evaluation_score_bucket(base_score), count(*) FROM new_rows
        WHERE graded AND base_score IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (year, "group", bucket) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO evaluation_score_counts AS c (year, "group", bucket, n)
        SELECT year, "group", evaluation_score_bucket(base_score), -count(*) FROM old_rows
        WHERE graded AND base_score IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (year, "group", bucket) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO evaluation_score_counts AS c (year, "group", bucket, n)
        SELECT year, "group", b, sum(d) FROM (
            SELECT year, "group", evaluation_score_bucket(base_score) AS b, 1 AS d
            FROM new_rows WHERE graded AND base_score IS NOT NULL
            UNION ALL
            SELECT year, "group", evaluation_score_bucket(base_score), -1
            FROM old_rows WHERE graded AND base_score IS NOT NULL
        ) x GROUP BY 1, 2, 3 HAVING sum(d) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (year, "group", bucket) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    DELETE FROM evaluation_score_counts WHERE n = 0;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "evaluation_score_counts",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("group", sa.Text(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", "group", "bucket", name="pk_evaluation_score_counts"),
    )
    # the emptied buckets a statement leaves, found without reading the others
    op.create_index(
        "ix_evaluation_score_counts_empty",
        "evaluation_score_counts",
        ["year"],
        postgresql_where=sa.text("n = 0"),
    )
    op.execute(FUNCTIONS)
    for event, ref in (
        ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
        ("UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ("TRUNCATE", ""),
    ):
        op.execute(
            f"CREATE TRIGGER evaluation_score_count_{event.lower()} AFTER {event} "
            f"ON evaluation_ranking {ref} FOR EACH STATEMENT "
            "EXECUTE FUNCTION evaluation_score_count()"
        )
    op.execute(
        """
        INSERT INTO evaluation_score_counts (year, "group", bucket, n)
        SELECT year, "group", evaluation_score_bucket(base_score), count(*)
        FROM evaluation_ranking WHERE graded AND base_score IS NOT NULL
        GROUP BY 1, 2, 3
        """
    )


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS evaluation_score_count_{event} ON evaluation_ranking")
    op.execute("DROP FUNCTION IF EXISTS evaluation_score_count()")
    for f in ("evaluation_score_bucket_high(bigint)", "evaluation_score_bucket_low(bigint)",
              "evaluation_score_bucket(double precision)"):  # fmt: skip
        op.execute(f"DROP FUNCTION IF EXISTS {f}")
    op.drop_table("evaluation_score_counts")

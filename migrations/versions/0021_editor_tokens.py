"""Department editor tokens: the role ``editor`` and the layers it may write

Revision ID: 0021_editor_tokens
Revises: 0020_evaluation_ranking
Create Date: 2026-12-04

A department (the statistics bureau, the tax bureau …) gets a token of role ``editor`` that may
write only the layers named in ``api_tokens.layers`` (contract codes, e.g. ``{CC,BD}``). An
editor reads as a viewer does, plus the restricted fields of its own layers. Every other role
has no layers (admin writes every layer; viewer and analyst none).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0021_editor_tokens"
down_revision = "0020_evaluation_ranking"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("layers", ARRAY(sa.Text())))
    op.drop_constraint(op.f("ck_api_tokens_role"), "api_tokens", type_="check")
    op.create_check_constraint(
        op.f("ck_api_tokens_role"), "api_tokens", "role IN ('viewer', 'editor', 'analyst', 'admin')"
    )
    op.create_check_constraint(
        op.f("ck_api_tokens_editor_layers"),
        "api_tokens",
        "(role = 'editor') = (layers IS NOT NULL AND cardinality(layers) > 0)",
    )


def downgrade() -> None:
    # editors cannot exist without their layers: revoke-by-removal would lose the audit link,
    # so refuse to downgrade while any editor token is live
    live = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM api_tokens WHERE role = 'editor'"))
        .scalar_one()
    )
    if live:
        raise RuntimeError(
            f"{live} editor token(s) exist; the previous schema has no editors. Delete them "
            "(DELETE FROM api_tokens WHERE role = 'editor') before downgrading"
        )
    op.drop_constraint(op.f("ck_api_tokens_editor_layers"), "api_tokens", type_="check")
    op.drop_constraint(op.f("ck_api_tokens_role"), "api_tokens", type_="check")
    op.create_check_constraint(
        op.f("ck_api_tokens_role"), "api_tokens", "role IN ('viewer', 'analyst', 'admin')"
    )
    op.drop_column("api_tokens", "layers")

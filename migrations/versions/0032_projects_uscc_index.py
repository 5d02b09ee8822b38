"""An index on the projects' enterprise (XM TYSHXYDM)

Revision ID: 0032_projects_uscc_index
Revises: 0031_evaluation_scores_base
Create Date: 2026-12-06

An enterprise's dossier (一企一档) lists its projects: those naming it by TYSHXYDM and those on
its parcels. Without an index on ``projects.uscc`` the first half read every project: on the
98,048-parcel city (60,252 projects) 13 ms of a 25 ms dossier.
"""

from alembic import op

revision = "0032_projects_uscc_index"
down_revision = "0031_evaluation_scores_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_projects_uscc", "projects", ["uscc"])


def downgrade() -> None:
    op.drop_index("ix_projects_uscc", "projects")

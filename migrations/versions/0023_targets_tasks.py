"""The plan's management layers: MB 目标 (annual targets) and RW 任务 (tasks)

Revision ID: 0023_targets_tasks
Revises: 0022_change_feed
Create Date: 2026-12-04

Two contract layers (../shared/DATA_CONTRACT.md, "Layers"), loaded like every other layer (file,
template or the row API) and kept with their history:
- ``targets`` (MB): key ND + JB + DM + ZB, the year, the level (区县 / 平台), the district or
  platform code, the indicator (a §7 indicator's Chinese name, PH_PEWG / PH_GEWY / PH_DX, TT);
  MBZ the target value, ZRDW the responsible unit, SM a note;
- ``tasks`` (RW): key RWDM; the plan's 任务分解表 with parent task, 工作项目, 具体要求, 进度要求,
  牵头 / 责任 / 配合单位, status and an evidence note.

The CHECK lists are written out here as they are today (a migration is a record of the schema it
made, not a reader of the current code).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0023_targets_tasks"
down_revision = "0022_change_feed"
branch_labels = None
depends_on = None

INDICATORS = (
    "工业增加值占GDP比重",
    "工业用地面积",
    "单位工业增加值能耗",
    "排放总量",
    "亩均产值",
    "亩均税收",
    "平台产值占比",
    "特色产业产值占比",
    "高新技术产业产值占比",
    "PH_PEWG",
    "PH_GEWY",
    "PH_DX",
    "TT",
)


def _provenance() -> list:
    return [
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    op.create_table(
        "targets",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False, comment="ND 年度"),
        sa.Column("level", sa.Text(), nullable=False, comment="JB 层级"),
        sa.Column("zone_code", sa.Text(), nullable=False, comment="DM 区县或平台代码"),
        sa.Column("indicator", sa.Text(), nullable=False, comment="ZB 指标"),
        sa.Column("target_value", sa.Double(), nullable=False, comment="MBZ 目标值"),
        sa.Column("responsible_unit", sa.Text(), nullable=True, comment="ZRDW 责任单位"),
        sa.Column("note", sa.Text(), nullable=True, comment="SM 说明"),
        *_provenance(),
        sa.CheckConstraint("level IN ('区县', '平台')", name=op.f("ck_targets_level_choice")),
        sa.CheckConstraint(
            f"indicator IN ({_in(INDICATORS)})", name=op.f("ck_targets_indicator_choice")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
        sa.UniqueConstraint(
            "year", "level", "zone_code", "indicator", name=op.f("uq_targets_year")
        ),
    )
    op.create_index(op.f("ix_targets_batch_id"), "targets", ["batch_id"], unique=False)
    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("code", sa.Text(), nullable=False, comment="RWDM 任务编号"),
        sa.Column("parent_code", sa.Text(), nullable=True, comment="SJRW 上级任务"),
        sa.Column("work_item", sa.Text(), nullable=False, comment="GZXM 工作项目"),
        sa.Column("requirement", sa.Text(), nullable=True, comment="JTYQ 具体要求"),
        sa.Column("schedule", sa.Text(), nullable=True, comment="JDYQ 进度要求"),
        sa.Column(
            "lead_units", postgresql.ARRAY(sa.Text()), nullable=True, comment="QTDW 牵头单位"
        ),
        sa.Column(
            "responsible_units", postgresql.ARRAY(sa.Text()), nullable=True, comment="ZRDW 责任单位"
        ),
        sa.Column(
            "cooperating_units", postgresql.ARRAY(sa.Text()), nullable=True, comment="PHDW 配合单位"
        ),
        sa.Column("status", sa.Text(), nullable=True, comment="ZT 状态"),
        sa.Column("note", sa.Text(), nullable=True, comment="SM 佐证说明"),
        *_provenance(),
        sa.CheckConstraint(
            "status IN ('未开始', '进行中', '已完成')", name=op.f("ck_tasks_status_choice")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("code", name=op.f("uq_tasks_code")),
    )
    op.create_index(op.f("ix_tasks_batch_id"), "tasks", ["batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_batch_id"), table_name="tasks")
    op.drop_table("tasks")
    op.drop_index(op.f("ix_targets_batch_id"), table_name="targets")
    op.drop_table("targets")

"""registry layers, import batches, tokens

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Every layer of the data contract (tables derived from gis/core/layers.py at this revision),
import batches with their per-key changes, and API tokens (stored hashed).
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('viewer', 'analyst', 'admin')", name=op.f("ck_api_tokens_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "import_batches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("layer", sa.Text(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("file_hash", sa.Text(), nullable=False),
        sa.Column(
            "options", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("rows_read", sa.Integer(), server_default="0", nullable=False),
        sa.Column("inserted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unchanged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rejected", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "report", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('loaded', 'rejected')", name=op.f("ck_import_batches_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batches")),
    )
    op.create_geospatial_table(
        "approvals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("doc_no", sa.Text(), nullable=False, comment="PZWH 批准文号"),
        sa.Column("batch_name", sa.Text(), nullable=True, comment="PCMC 批次名称"),
        sa.Column("approved_on", sa.Date(), nullable=False, comment="PZRQ 批准日期"),
        sa.Column("declared_area_m2", sa.Double(), nullable=True, comment="PZMJ 批准面积(m²)"),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4549,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "area_m2", sa.Double(), sa.Computed("ST_Area(geom)", persisted=True), nullable=True
        ),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name=op.f("ck_approvals_geom_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("doc_no", name=op.f("uq_approvals_doc_no")),
    )
    op.create_geospatial_index(
        "idx_approvals_geom",
        "approvals",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_approvals_batch_id"), "approvals", ["batch_id"], unique=False)
    op.create_geospatial_table(
        "corridors",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("code", sa.Text(), nullable=False, comment="ZLDM 走廊代码"),
        sa.Column("name", sa.Text(), nullable=False, comment="ZLMC 走廊名称"),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4549,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "area_m2", sa.Double(), sa.Computed("ST_Area(geom)", persisted=True), nullable=True
        ),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name=op.f("ck_corridors_geom_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_corridors")),
        sa.UniqueConstraint("code", name=op.f("uq_corridors_code")),
    )
    op.create_geospatial_index(
        "idx_corridors_geom",
        "corridors",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_corridors_batch_id"), "corridors", ["batch_id"], unique=False)
    op.create_table(
        "district_stats",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("district_code", sa.Text(), nullable=False, comment="XZQDM 行政区代码"),
        sa.Column("year", sa.Integer(), nullable=False, comment="ND 年度"),
        sa.Column("gdp", sa.Double(), nullable=True, comment="GDP 地区生产总值(万元)"),
        sa.Column("value_added", sa.Double(), nullable=True, comment="GYZJZ 工业增加值(万元)"),
        sa.Column(
            "industrial_land_m2", sa.Double(), nullable=True, comment="GYYDMJ 工业用地面积(m²)"
        ),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_district_stats")),
        sa.UniqueConstraint("district_code", "year", name=op.f("uq_district_stats_district_code")),
    )
    op.create_index(
        op.f("ix_district_stats_batch_id"), "district_stats", ["batch_id"], unique=False
    )
    op.create_geospatial_table(
        "districts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("code", sa.Text(), nullable=False, comment="XZQDM 行政区代码"),
        sa.Column("name", sa.Text(), nullable=False, comment="XZQMC 行政区名称"),
        sa.Column("main_urban", sa.Boolean(), nullable=True, comment="ZCQ 主城区"),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4549,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "area_m2", sa.Double(), sa.Computed("ST_Area(geom)", persisted=True), nullable=True
        ),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name=op.f("ck_districts_geom_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_districts")),
        sa.UniqueConstraint("code", name=op.f("uq_districts_code")),
    )
    op.create_geospatial_index(
        "idx_districts_geom",
        "districts",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_districts_batch_id"), "districts", ["batch_id"], unique=False)
    op.create_geospatial_table(
        "enterprises",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uscc", sa.Text(), nullable=False, comment="TYSHXYDM 统一社会信用代码"),
        sa.Column("name", sa.Text(), nullable=False, comment="QYMC 企业名称"),
        sa.Column("industry_code", sa.Text(), nullable=False, comment="HYDM 行业代码"),
        sa.Column("above_size", sa.Boolean(), nullable=True, comment="GMYS 规模以上"),
        sa.Column(
            "parcel_nos", postgresql.ARRAY(sa.Text()), nullable=True, comment="DKBH 占用地块"
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4549,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("source_crs", sa.Text(), nullable=True, comment="ZBXT 坐标系"),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'", name=op.f("ck_enterprises_uscc_uscc")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enterprises")),
        sa.UniqueConstraint("uscc", name=op.f("uq_enterprises_uscc")),
    )
    op.create_geospatial_index(
        "idx_enterprises_geom",
        "enterprises",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_enterprises_batch_id"), "enterprises", ["batch_id"], unique=False)
    op.create_table(
        "failed_standards",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uscc", sa.Text(), nullable=False, comment="TYSHXYDM 统一社会信用代码"),
        sa.Column("year", sa.Integer(), nullable=False, comment="ND 年度"),
        sa.Column("kind", sa.Text(), nullable=False, comment="BDLX 不达标类型"),
        sa.Column("note", sa.Text(), nullable=True, comment="SM 说明"),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('安全生产', '环境保护', '节能降耗', '产品质量')",
            name=op.f("ck_failed_standards_kind_choice"),
        ),
        sa.CheckConstraint(
            "uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'", name=op.f("ck_failed_standards_uscc_uscc")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_standards")),
        sa.UniqueConstraint("uscc", "year", "kind", name=op.f("uq_failed_standards_uscc")),
    )
    op.create_index(
        op.f("ix_failed_standards_batch_id"), "failed_standards", ["batch_id"], unique=False
    )
    op.create_table(
        "import_changes",
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("layer", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint("action IN ('insert', 'update')", name=op.f("ck_import_changes_action")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["import_batches.id"],
            name=op.f("fk_import_changes_batch_id"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        op.f("ix_import_changes_batch_id"), "import_changes", ["batch_id"], unique=False
    )
    op.create_table(
        "outputs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uscc", sa.Text(), nullable=False, comment="TYSHXYDM 统一社会信用代码"),
        sa.Column("year", sa.Integer(), nullable=False, comment="ND 年度"),
        sa.Column("gross_output", sa.Double(), nullable=True, comment="GYZCZ 工业总产值(万元)"),
        sa.Column("revenue", sa.Double(), nullable=True, comment="YYSR 营业收入(万元)"),
        sa.Column("value_added", sa.Double(), nullable=True, comment="GYZJZ 工业增加值(万元)"),
        sa.Column("tax_paid", sa.Double(), nullable=False, comment="SJSJ 实缴税金(万元)"),
        sa.Column("energy_tce", sa.Double(), nullable=True, comment="ZHNH 综合能耗(吨标准煤)"),
        sa.Column("emissions_t", sa.Double(), nullable=True, comment="PFDL 排放当量(吨)"),
        sa.Column("rd_spending", sa.Double(), nullable=True, comment="YFFY 研发费用(万元)"),
        sa.Column("employees", sa.Double(), nullable=True, comment="CYRS 从业人数"),
        sa.Column("declared_land_m2", sa.Double(), nullable=True, comment="YDMJ 用地面积(m²)"),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'", name=op.f("ck_outputs_uscc_uscc")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outputs")),
        sa.UniqueConstraint("uscc", "year", name=op.f("uq_outputs_uscc")),
    )
    op.create_index(op.f("ix_outputs_batch_id"), "outputs", ["batch_id"], unique=False)
    op.create_geospatial_table(
        "parcels",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("parcel_no", sa.Text(), nullable=False, comment="DKBH 地块编号"),
        sa.Column("land_use_code", sa.Text(), nullable=False, comment="DLBM 地类编码"),
        sa.Column("actual_use", sa.Text(), nullable=True, comment="SJYT 实际用途"),
        sa.Column("floor_area_m2", sa.Double(), nullable=True, comment="JZMJ 建筑面积(m²)"),
        sa.Column("footprint_m2", sa.Double(), nullable=True, comment="JZJDMJ 建筑基底面积(m²)"),
        sa.Column("supply_no", sa.Text(), nullable=True, comment="DZJGH 电子监管号"),
        sa.Column("holder_name", sa.Text(), nullable=True, comment="QLR 权利人"),
        sa.Column("holder_uscc", sa.Text(), nullable=True, comment="QLRDM 权利人信用代码"),
        sa.Column("district_code", sa.Text(), nullable=True, comment="XZQDM 行政区代码"),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4549,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "area_m2", sa.Double(), sa.Computed("ST_Area(geom)", persisted=True), nullable=True
        ),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "actual_use IN ('工业', '创新型产业', '挪作他用', '闲置')",
            name=op.f("ck_parcels_actual_use_choice"),
        ),
        sa.CheckConstraint(
            "holder_uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'", name=op.f("ck_parcels_holder_uscc_uscc")
        ),
        sa.CheckConstraint(
            "ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name=op.f("ck_parcels_geom_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcels")),
        sa.UniqueConstraint("parcel_no", name=op.f("uq_parcels_parcel_no")),
    )
    op.create_geospatial_index(
        "idx_parcels_geom",
        "parcels",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_parcels_batch_id"), "parcels", ["batch_id"], unique=False)
    op.create_geospatial_table(
        "platforms",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("code", sa.Text(), nullable=False, comment="PTDM 平台代码"),
        sa.Column("name", sa.Text(), nullable=False, comment="PTMC 平台名称"),
        sa.Column("level", sa.Text(), nullable=False, comment="PTJB 平台级别"),
        sa.Column("type", sa.Text(), nullable=True, comment="PTLX 平台类型"),
        sa.Column("district_code", sa.Text(), nullable=True, comment="XZQDM 行政区代码"),
        sa.Column(
            "featured_industries",
            postgresql.ARRAY(sa.Text()),
            nullable=True,
            comment="TSCY 特色产业",
        ),
        sa.Column(
            "negative_list", postgresql.ARRAY(sa.Text()), nullable=True, comment="FMQD 负面清单"
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4549,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "area_m2", sa.Double(), sa.Computed("ST_Area(geom)", persisted=True), nullable=True
        ),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "level IN ('国家级', '省级', '市级', '其他')", name=op.f("ck_platforms_level_choice")
        ),
        sa.CheckConstraint(
            "type IN ('经济技术开发区', '高新技术产业开发区', '经济开发区', '工业园区', '工业功能区', '小微企业园', '特色小镇')",
            name=op.f("ck_platforms_type_choice"),
        ),
        sa.CheckConstraint(
            "ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name=op.f("ck_platforms_geom_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platforms")),
        sa.UniqueConstraint("code", name=op.f("uq_platforms_code")),
    )
    op.create_geospatial_index(
        "idx_platforms_geom",
        "platforms",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_platforms_batch_id"), "platforms", ["batch_id"], unique=False)
    op.create_geospatial_table(
        "projects",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("project_code", sa.Text(), nullable=False, comment="XMDM 项目代码"),
        sa.Column("name", sa.Text(), nullable=False, comment="XMMC 项目名称"),
        sa.Column("uscc", sa.Text(), nullable=True, comment="TYSHXYDM 统一社会信用代码"),
        sa.Column("supply_no", sa.Text(), nullable=True, comment="DZJGH 电子监管号"),
        sa.Column("parcel_no", sa.Text(), nullable=True, comment="DKBH 地块编号"),
        sa.Column("planned_investment", sa.Double(), nullable=False, comment="JHTZ 计划投资(万元)"),
        sa.Column(
            "investment_made", sa.Double(), nullable=True, comment="LJWCTZ 累计完成投资(万元)"
        ),
        sa.Column("status", sa.Text(), nullable=True, comment="XMZT 项目状态"),
        sa.Column("started_on", sa.Date(), nullable=True, comment="KGRQ 开工日期"),
        sa.Column("production_on", sa.Date(), nullable=True, comment="TCRQ 投产日期"),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4549,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "area_m2", sa.Double(), sa.Computed("ST_Area(geom)", persisted=True), nullable=True
        ),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('未开工', '在建', '停建', '投产')", name=op.f("ck_projects_status_choice")
        ),
        sa.CheckConstraint(
            "uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'", name=op.f("ck_projects_uscc_uscc")
        ),
        sa.CheckConstraint(
            "ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name=op.f("ck_projects_geom_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("project_code", name=op.f("uq_projects_project_code")),
    )
    op.create_geospatial_index(
        "idx_projects_geom",
        "projects",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_projects_batch_id"), "projects", ["batch_id"], unique=False)
    op.create_geospatial_table(
        "supplies",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("supply_no", sa.Text(), nullable=False, comment="DZJGH 电子监管号"),
        sa.Column("method", sa.Text(), nullable=False, comment="GDFS 供地方式"),
        sa.Column("land_use_code", sa.Text(), nullable=False, comment="TDYT 土地用途"),
        sa.Column("supplied_on", sa.Date(), nullable=False, comment="GDRQ 供地日期"),
        sa.Column("grantee_name", sa.Text(), nullable=True, comment="SRR 受让人"),
        sa.Column("grantee_uscc", sa.Text(), nullable=True, comment="SRRDM 受让人信用代码"),
        sa.Column("agreed_start", sa.Date(), nullable=False, comment="HTKGSJ 约定开工时间"),
        sa.Column("agreed_completion", sa.Date(), nullable=True, comment="HTJGSJ 约定竣工时间"),
        sa.Column("actual_start", sa.Date(), nullable=True, comment="SJKGSJ 实际开工时间"),
        sa.Column("actual_completion", sa.Date(), nullable=True, comment="SJJGSJ 实际竣工时间"),
        sa.Column("stopped_on", sa.Date(), nullable=True, comment="TGRQ 停工日期"),
        sa.Column("plot_ratio_min", sa.Double(), nullable=True, comment="RJLXX 容积率下限"),
        sa.Column("plot_ratio_max", sa.Double(), nullable=True, comment="RJLSX 容积率上限"),
        sa.Column("agreed_investment", sa.Double(), nullable=True, comment="YDTZ 约定总投资(万元)"),
        sa.Column("investment_made", sa.Double(), nullable=True, comment="SJTZ 已完成投资(万元)"),
        sa.Column("developed_area_m2", sa.Double(), nullable=True, comment="YKFMJ 已开发面积(m²)"),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4549,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "area_m2", sa.Double(), sa.Computed("ST_Area(geom)", persisted=True), nullable=True
        ),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "grantee_uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'", name=op.f("ck_supplies_grantee_uscc_uscc")
        ),
        sa.CheckConstraint(
            "method IN ('出让', '划拨', '租赁', '作价出资')", name=op.f("ck_supplies_method_choice")
        ),
        sa.CheckConstraint(
            "ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name=op.f("ck_supplies_geom_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supplies")),
        sa.UniqueConstraint("supply_no", name=op.f("uq_supplies_supply_no")),
    )
    op.create_geospatial_index(
        "idx_supplies_geom",
        "supplies",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_supplies_batch_id"), "supplies", ["batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_supplies_batch_id"), table_name="supplies")
    op.drop_geospatial_index(
        "idx_supplies_geom", table_name="supplies", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("supplies")
    op.drop_index(op.f("ix_projects_batch_id"), table_name="projects")
    op.drop_geospatial_index(
        "idx_projects_geom", table_name="projects", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("projects")
    op.drop_index(op.f("ix_platforms_batch_id"), table_name="platforms")
    op.drop_geospatial_index(
        "idx_platforms_geom", table_name="platforms", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("platforms")
    op.drop_index(op.f("ix_parcels_batch_id"), table_name="parcels")
    op.drop_geospatial_index(
        "idx_parcels_geom", table_name="parcels", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("parcels")
    op.drop_index(op.f("ix_outputs_batch_id"), table_name="outputs")
    op.drop_table("outputs")
    op.drop_index(op.f("ix_import_changes_batch_id"), table_name="import_changes")
    op.drop_table("import_changes")
    op.drop_index(op.f("ix_failed_standards_batch_id"), table_name="failed_standards")
    op.drop_table("failed_standards")
    op.drop_index(op.f("ix_enterprises_batch_id"), table_name="enterprises")
    op.drop_geospatial_index(
        "idx_enterprises_geom",
        table_name="enterprises",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("enterprises")
    op.drop_index(op.f("ix_districts_batch_id"), table_name="districts")
    op.drop_geospatial_index(
        "idx_districts_geom", table_name="districts", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("districts")
    op.drop_index(op.f("ix_district_stats_batch_id"), table_name="district_stats")
    op.drop_table("district_stats")
    op.drop_index(op.f("ix_corridors_batch_id"), table_name="corridors")
    op.drop_geospatial_index(
        "idx_corridors_geom", table_name="corridors", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("corridors")
    op.drop_index(op.f("ix_approvals_batch_id"), table_name="approvals")
    op.drop_geospatial_index(
        "idx_approvals_geom", table_name="approvals", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("approvals")
    op.drop_table("import_batches")
    op.drop_table("api_tokens")

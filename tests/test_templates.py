"""Excel templates for the departments: the workbook, header forms an import accepts, and a
refused workbook handed back marked (CLI ``--report-xlsx``, HTTP ``report=xlsx``)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from gis.core.layers import layer
from gis.ingest import InputError, import_file
from gis.ingest.read import header_codes
from tests.factories import uscc

# --- header forms -----------------------------------------------------------------------------


def test_headers_are_read_as_codes_labels_or_both():
    cc = layer("cc")
    got = header_codes(
        [
            "统一社会信用代码(TYSHXYDM)",
            "年度（ND）",  # full-width parentheses
            "工业总产值(万元)",  # the label
            "营业收入",  # the label without its unit
            "*实缴税金(万元)(SJSJ)",  # a required mark
            "yffy",  # a code in lower case
            "用地面积(m2)",  # m2 for m²
            "备注",  # no field: kept for the warning
            "企业名称(QYMC)",  # a code of another layer: kept
        ],
        cc,
        "CC.xlsx",
    )
    assert got[:7] == ["TYSHXYDM", "ND", "GYZCZ", "YYSR", "SJSJ", "YFFY", "YDMJ"]
    assert got[7:] == ["备注", "企业名称(QYMC)"]
    qy = header_codes(["X坐标", "Y坐标(Y)", "坐标系统"], layer("qy"), "QY.csv")
    assert qy == ["X", "Y", "ZBXT"]
    assert header_codes(["X坐标"], layer("cc"), "CC.csv") == ["X坐标"]  # no point columns
    with pytest.raises(InputError, match="'QYMC' and '企业名称' both give field QYMC"):
        header_codes(["QYMC", "企业名称"], layer("qy"), "QY.xlsx")


def test_label_headers_work_for_csv_too(db, tmp_path):
    qy = tmp_path / "QY.csv"
    pd.DataFrame(
        {
            "统一社会信用代码（TYSHXYDM）": [uscc(1)],
            "企业名称": ["杭州甲科技有限公司"],
            "行业代码(HYDM)": ["3911"],
            "备注": ["不是合同字段"],
        }
    ).to_csv(qy, index=False, encoding="gbk")
    rep = import_file(db, "qy", qy)
    assert rep["inserted"] == 1 and rep["encoding"] == "gb18030"
    assert "columns not in the contract, ignored: 备注" in rep["warnings"]
    cc = tmp_path / "CC.csv"
    pd.DataFrame({"统一社会信用代码": [uscc(1)], "年度": [2024], "实缴税金": ["12.5"]}).to_csv(
        cc, index=False, encoding="utf-8-sig"
    )
    assert import_file(db, "cc", cc)["inserted"] == 1
    with db.connect() as c:
        assert c.execute(text("SELECT name FROM enterprises")).scalar() == "杭州甲科技有限公司"
        assert c.execute(text("SELECT year, tax_paid FROM outputs")).one() == (2024, 12.5)
    # a required field under a label that names no field is missing, and the message says so
    bad = tmp_path / "CC2.csv"
    pd.DataFrame({"统一社会信用代码": [uscc(1)], "年份": [2024], "实缴税金": [1]}).to_csv(
        bad, index=False
    )
    with pytest.raises(InputError, match=r"required column\(s\) ND missing.*年份"):
        import_file(db, "cc", bad)

"""The task table (RW 任务): deadline forms, parents, overdue tasks, the unit filter, who updated a
task and when, the measures, the plan's own table in the sample city; a real PostGIS, a real
`landlink serve` and an editor token for RW."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from gis.ingest import ImportOptions, ImportRejected, import_file
from gis.ingest.validate import DEADLINE_FORMS
from gis.management import tasks
from tests.conftest import bearer, sample_as_of, served_copy, snapshot

HEADER = ["RWDM", "SJRW", "GZXM", "JTYQ", "JDYQ", "QTDW", "ZRDW", "PHDW", "ZT", "SM"]


def write_rw(path: Path, rows: list[dict]) -> Path:
    """An RW table (UTF-8 CSV) of ``rows`` (contract codes; missing fields empty)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, HEADER)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in HEADER})
    return path


def task(code: str, parent: str = "", due: str = "", status: str = "", **more: str) -> dict:
    return {"RWDM": code, "SJRW": parent, "GZXM": f"工作{code}", "JDYQ": due, "ZT": status, **more}


# (JDYQ, the last day it allows, or None for no deadline)
FORMS = [
    ("2018-12-31", date(2018, 12, 31)),
    ("2018/6/30", date(2018, 6, 30)),
    ("20180331", date(2018, 3, 31)),
    ("43465", date(2018, 12, 31)),  # an Excel day number
    ("2018年6月", date(2018, 6, 30)),
    ("2018年2月前", date(2018, 2, 28)),
    ("2020年2月底前", date(2020, 2, 29)),
    ("2018年6月15日", date(2018, 6, 15)),
    ("2018年6月15日前", date(2018, 6, 15)),
    ("2018年底", date(2018, 12, 31)),
    ("2019年底前", date(2019, 12, 31)),
    ("2018~2020", date(2020, 12, 31)),
    ("2018-2020", date(2020, 12, 31)),
    ("2018～2019", date(2019, 12, 31)),
    ("2018年-2020年", date(2020, 12, 31)),
    ("长期", None),
    ("持续", None),
    ("持续推进", None),
    ("", None),
]


def test_every_deadline_form_loads_with_its_last_day(db, tmp_path):
    rows = [task(f"T{i}", due=text_) for i, (text_, _) in enumerate(FORMS)]
    rep = import_file(db, "rw", write_rw(tmp_path / "RW.csv", rows))
    assert (rep["inserted"], rep["rejected"]) == (len(FORMS), 0)
    with db.connect() as c:
        got = {it["code"]: it["deadline"] for it in tasks.task_table(c, date(2018, 1, 1))}
    for i, (text_, last_day) in enumerate(FORMS):
        d = got[f"T{i}"]
        assert d["due"] == (last_day.isoformat() if last_day else None), text_
        assert d["readable"]
        assert (d["form"] == "ongoing") == (text_ in ("长期", "持续", "持续推进")), text_


@pytest.mark.parametrize(
    "value",
    ["2018", "明年", "2018年前", "2020~2018", "2018年13月", "2018年2月30日", "2018-02-30", "近期"],
)
def test_a_deadline_in_no_form_is_refused_naming_the_forms(db, tmp_path, value):
    path = write_rw(tmp_path / "RW.csv", [task("1", due="2018年底"), task("2", due=value)])
    before = snapshot(db)
    with pytest.raises(ImportRejected) as exc:
        import_file(db, "rw", path)
    assert snapshot(db) == before
    (err,) = exc.value.report["errors"]
    assert (err["where"], err["key"], err["field"]) == ("row 3", "2", "JDYQ")
    assert repr(value) in err["reason"] and DEADLINE_FORMS in err["reason"]


def test_parents_must_be_tasks_of_the_file_or_stored_and_make_no_cycle(db, tmp_path):
    import_file(db, "rw", write_rw(tmp_path / "a.csv", [task("1"), task("1.1", "1")]))
    cases = [
        # a parent in the same file, and one already stored: accepted
        ([task("2"), task("2.1", "2"), task("1.2", "1")], None),
        ([task("3", "3")], ("row 2", "3", "names the row itself")),
        ([task("4.1", "4")], ("row 2", "4.1", "'4' is not a task of this file nor of layer RW")),
        # 1 under 1.1 while 1.1 is under 1 (stored): a cycle
        ([task("1", "1.1")], ("row 2", "1", "makes a cycle of tasks: 1 → 1.1 → 1")),
        ([task("5", "6"), task("6", "5")], ("row 2", "5", "5 → 6 → 5")),
    ]
    for i, (rows, refused) in enumerate(cases):
        path = write_rw(tmp_path / f"c{i}.csv", rows)
        if refused is None:
            assert import_file(db, "rw", path)["inserted"] == len(rows)
            continue
        before = snapshot(db)
        with pytest.raises(ImportRejected) as exc:
            import_file(db, "rw", path)
        assert snapshot(db) == before, rows
        err = exc.value.report["errors"][0]
        assert (err["where"], err["key"], err["field"]) == (*refused[:2], "SJRW"), err
        assert refused[2] in err["reason"], err
    # lenient: a sub-task of a refused row is refused with it, the rest loads
    path = write_rw(tmp_path / "l.csv", [task("7", due="明年"), task("7.1", "7"), task("8")])
    rep = import_file(db, "rw", path, ImportOptions(strict=False))
    assert rep["inserted"] == 1 and {e["key"] for e in rep["errors"]} == {"7", "7.1"}


def _tree_file(tmp_path: Path) -> Path:
    """Two work items: 1 (done itself, sub-task 1.1 due 2019-06-30 still open, 1.2 done) and
    2 (长期, sub-task 2.1 due 2020年底 not started, 2.1.1 due 2018年底 in progress)."""
    return write_rw(
        tmp_path / "RW.csv",
        [
            task("1", due="2018年底", status="已完成", QTDW="市经信委", ZRDW="各区县政府"),
            task("1.1", "1", due="2019-06-30", status="进行中", QTDW="市国土资源局"),
            task("1.2", "1", due="2018年6月底前", status="已完成", QTDW="市统计局"),
            task("2", due="长期", status="进行中", QTDW="市发改委", PHDW="市经信委、市税务局"),
            task("2.1", "2", due="2018~2020", status="未开始"),
            task("2.1.1", "2.1", due="2018年底前", status="进行中", ZRDW="市环保局"),
        ],
    )


def test_overdue_at_two_dates_and_parents_overdue_through_sub_tasks(db, tmp_path):
    import_file(db, "rw", _tree_file(tmp_path))

    def judged(as_of: date) -> dict:
        with db.connect() as c:
            return {it["code"]: it for it in tasks.task_table(c, as_of)}

    # 2019-01-01: only 2.1.1 (due 2018-12-31, in progress) is late; 2.1 and 2 through it
    early = judged(date(2019, 1, 1))
    assert {c for c, it in early.items() if it["overdue_self"]} == {"2.1.1"}
    assert {c for c, it in early.items() if it["overdue"]} == {"2.1.1", "2.1", "2"}
    assert early["2"]["overdue_subtasks"] == ["2.1.1"]
    assert early["1"]["state"]["code"] == "done" and early["1.1"]["state"]["code"] == "open"
    # 2021-01-01: 1.1 (2019-06-30) and 2.1 (2020-12-31) are late too; 1 is done but its
    # sub-task is not: flagged
    late = judged(date(2021, 1, 1))
    assert {c for c, it in late.items() if it["overdue_self"]} == {"1.1", "2.1", "2.1.1"}
    assert {c for c, it in late.items() if it["overdue"]} == {"1", "1.1", "2", "2.1", "2.1.1"}
    assert late["1"]["overdue_subtasks"] == ["1.1"] and not late["1"]["overdue_self"]
    assert late["2"]["state"]["code"] == "overdue" and late["2"]["deadline"]["due"] is None
    assert (late["1"]["subtask_count"], late["1"]["subtasks_done"]) == (2, 1)
    assert [it["code"] for it in judged(date(2021, 1, 1)).values()] == [
        "1", "1.1", "1.2", "2", "2.1", "2.1.1",
    ]  # fmt: skip
    # the as-of date on the deadline's own day: not late yet
    assert not judged(date(2019, 6, 30))["1.1"]["overdue_self"]
    assert judged(date(2019, 7, 1))["1.1"]["overdue_self"]


def test_unit_filter_matches_lead_responsible_or_cooperating_units(db, tmp_path):
    import_file(db, "rw", _tree_file(tmp_path))
    with db.connect() as c:

        def codes(**kw) -> list[str]:
            return [it["code"] for it in tasks.list_tasks(c, as_of=date(2021, 1, 1), **kw)["items"]]

        # 市经信委 leads 1 and cooperates on 2; 2.1 has no units of its own: it takes 2's
        assert codes(unit="市经信委") == ["1", "2", "2.1"]
        assert codes(unit="经信") == ["1", "2", "2.1"]
        assert codes(unit="市环保局") == ["2.1.1"]
        assert codes(unit="市国土资源局") == ["1.1"]
        assert codes(status="已完成") == ["1", "1.2"]
        assert codes(overdue=False) == ["1.2"]
        assert codes(unit="市经信委", overdue=True, status="进行中") == ["2"]
        roles = tasks.list_tasks(c, unit="市经信委", as_of=date(2021, 1, 1))["items"]
        assert [it["unit_roles"] for it in roles] == [["lead"], ["cooperating"], ["cooperating"]]
        assert roles[2]["units"]["inherited"]
        with pytest.raises(ValueError, match="未开始 / 进行中 / 已完成"):
            tasks.list_tasks(c, status="完成")


def test_measures_link_the_years_targets_and_the_figures(db, tmp_path):
    rows = [
        task("1", GZXM="存量土地盘活", JTYQ="亩均"),
        task("1.1", "1", GZXM="批而未供土地处置"),
        task("2", GZXM="开展一次全面摸底调查", JTYQ="挪作他用及闲置"),
        task("3", GZXM="落实工作", JTYQ="亩均税收提升"),
        task("4", GZXM="其他工作"),
    ]
    import_file(db, "rw", write_rw(tmp_path / "RW.csv", rows))
    with db.begin() as c:
        ids = {}
        for year, ind, zone in [
            (2024, "PH_PEWG", "330102"),
            (2025, "PH_PEWG", "330102"),
            (2025, "PH_PEWG", "330105"),
            (2027, "PH_PEWG", "330102"),
            (2025, "亩均税收", "330102"),
        ]:
            ids[year, ind, zone] = c.execute(
                text(
                    "INSERT INTO targets (year, level, zone_code, indicator, target_value, "
                    "batch_id, row_hash) VALUES (:y, '区县', :z, :i, 10, 0, 'x') RETURNING id"
                ),
                {"y": year, "z": zone, "i": ind},
            ).scalar_one()
    with db.connect() as c:
        got = {it["code"]: it["measures"] for it in tasks.task_table(c, date(2026, 6, 30))}
    (pewg,) = got["1.1"]
    assert (pewg["keyword"], pewg["matched_in"]) == ("批而未供", "GZXM")
    # the latest year up to 2026 with PH_PEWG targets is 2025: both districts, not 2024 or 2027
    assert pewg["targets"] == [
        {"indicator": "PH_PEWG", "year": 2025,
         "ids": [ids[2025, "PH_PEWG", "330102"], ids[2025, "PH_PEWG", "330105"]]},
    ]  # fmt: skip
    assert [f["code"] for f in pewg["figures"]] == ["unsupplied", "targets"]
    # 盘活 names the three lands' indicators; its 具体要求 (亩均) is not read
    (stock,) = got["1"]
    assert [t["indicator"] for t in stock["targets"]] == ["PH_PEWG", "PH_GEWY", "PH_DX"]
    assert [t["ids"] for t in stock["targets"]][1:] == [[], []]
    # the survey is measured by the survey, not by the 闲置 its requirement mentions
    assert [m["figures"][0]["code"] for m in got["2"]] == ["survey"]
    # nothing in the 工作项目: the 具体要求 decides
    (tax,) = got["3"]
    assert tax["matched_in"] == "JTYQ" and tax["targets"][1]["ids"] == [
        ids[2025, "亩均税收", "330102"]
    ]
    assert got["4"] == []


def test_every_figure_has_an_endpoint():
    from app.routers.tasks import FIGURE_PATHS
    from gis.core.vocabulary import labels

    assert set(FIGURE_PATHS) == set(labels("task_figure"))


# ---- the sample city's task table over HTTP, an editor's update, the CLI -------------------


def expected_overdue(as_of: date) -> set[str]:
    """Overdue tasks of the committed RW.csv worked out from the file: own deadline before
    ``as_of`` and not 已完成, or a sub-task overdue (two levels in the plan's table)."""
    from gis.ingest.validate import parse_deadlines
    from tests.conftest import SAMPLE_DIR

    with open(SAMPLE_DIR / "RW.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    import pandas as pd

    due, _, _ = parse_deadlines(pd.Series([r["JDYQ"] for r in rows], dtype=object))
    late = {
        r["RWDM"]
        for r, d in zip(rows, due, strict=True)
        if d is not None and d < as_of and r["ZT"] != "已完成"
    }
    return late | {r["SJRW"] for r in rows if r["RWDM"] in late and r["SJRW"]}


@pytest.fixture(scope="module")
def city(sample_engine, tmp_path_factory):
    """(base URL, engine, tokens) on a copy of the sample city, served by `landlink serve`."""
    with served_copy(
        sample_engine,
        "tasks",
        tmp_path_factory.mktemp("tasks"),
        {
            "rw": ("editor", "市经信委", ["rw"]),
            "cc": ("editor", "市统计局", ["cc"]),
        },
    ) as served:
        yield served


def test_the_plans_own_table_is_loaded_with_its_overdue_tasks(city, sample_engine):
    base, _, _ = city
    (report,) = [r for r in sample_engine.sample_reports if r["layer"] == "RW"]
    assert (report["rejected"], report["inserted"]) == (0, 36)
    as_of = sample_as_of()
    res = httpx.get(f"{base}/api/tasks", params={"as_of": as_of.isoformat()}, timeout=60).json()
    items = {it["code"]: it for it in res["items"]}
    work_items = [it for it in res["items"] if it["parent"] is None]
    assert len(work_items) == 9 and all(it["subtask_count"] >= 2 for it in work_items)
    assert sum(it["subtask_count"] for it in work_items) == len(items) - 9
    late = expected_overdue(as_of)
    assert {c for c, it in items.items() if it["overdue"]} == late
    assert res["overdue"] == len(late) >= 5
    done = {c for c, it in items.items() if it["state"]["code"] == "done"}
    assert len(done) >= 5 and not done & late
    # every task with its fields by contract code, labels beside them
    assert res["fields"]["JDYQ"] == "进度要求" and items["4.1"]["properties"]["SJRW"] == "4"
    assert items["4.1"]["properties"]["QTDW"] == ["市国土资源局"]
    # long-term tasks have no deadline and are never overdue
    assert items["3.4"]["deadline"] == {"text": "长期", "due": None, "form": "ongoing",
                                        "readable": True}  # fmt: skip
    assert items["3.4"]["state"]["code"] == "no_deadline"
    # what measures 4.1 批而未供土地处置: the year's PH_PEWG targets and the unsupplied list
    (m,) = items["4.1"]["measures"]
    assert m["targets"][0]["indicator"] == "PH_PEWG"
    assert {f["code"]: f["href"] for f in m["figures"]} == {
        "unsupplied": f"{base}/api/land/unsupplied",
        "targets": f"{base}/api/targets",
    }
    assert httpx.get(m["figures"][0]["href"], timeout=60).status_code == 200
    # on the day the plan was issued nothing was late
    early = httpx.get(f"{base}/api/tasks", params={"as_of": "2017-12-07"}, timeout=60).json()
    assert early["overdue"] == 0 and expected_overdue(date(2017, 12, 7)) == set()
    # 2019-04-01: the tasks due by the end of 2018 or March 2019 and still open
    mid = httpx.get(
        f"{base}/api/tasks", params={"as_of": "2019-04-01", "overdue": "true"}, timeout=60
    ).json()
    assert {it["code"] for it in mid["items"]} == expected_overdue(date(2019, 4, 1))
    assert {"2", "7", "7.2", "9", "9.2"} <= expected_overdue(date(2019, 4, 1))


def test_filters_and_refusals_over_http(city):
    base, _, _ = city
    as_of = sample_as_of().isoformat()

    def codes(**params) -> list[str]:
        r = httpx.get(f"{base}/api/tasks", params={"as_of": as_of, **params}, timeout=60)
        assert r.status_code == 200, r.text
        return [it["code"] for it in r.json()["items"]]

    stats = codes(unit="市统计局")
    assert stats and all(c in codes() for c in stats)
    # the tasks where 市统计局 leads, is responsible or cooperates, read from the file
    from tests.conftest import SAMPLE_DIR

    with open(SAMPLE_DIR / "RW.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    holds = [r["RWDM"] for r in rows if "市统计局" in r["QTDW"] + r["ZRDW"] + r["PHDW"]]
    assert stats == holds
    assert codes(unit="市统计局", overdue="true") == [
        c for c in holds if c in expected_overdue(sample_as_of())
    ]
    assert codes(status="未开始") == [r["RWDM"] for r in rows if r["ZT"] == "未开始"]
    bad = httpx.get(f"{base}/api/tasks", params={"status": "完成"}, timeout=60)
    assert bad.status_code == 400 and "未开始 / 进行中 / 已完成" in bad.json()["detail"]
    missing = httpx.get(f"{base}/api/tasks/99.9", timeout=60)
    assert missing.status_code == 404 and "/api/tasks" in missing.json()["detail"]


def test_an_editor_of_rw_sets_status_and_evidence_and_the_tasks_show_who_and_when(city):
    base, eng, toks = city
    as_of = sample_as_of().isoformat()
    url = f"{base}/api/layers/rw/rows/9.2"
    before = httpx.get(f"{base}/api/tasks/9.2", params={"as_of": as_of}, timeout=60).json()
    assert before["overdue"] and before["status"] == "进行中"
    etag = httpx.get(url, timeout=60).headers["ETag"]
    patch = {"properties": {"ZT": "已完成", "SM": "2019年4月公布2018年度各平台数据"}}
    # an editor of another layer, and no token: refused, nothing written
    other = httpx.patch(url, json=patch, headers=bearer(toks["cc"], **{"If-Match": etag}))
    assert other.status_code == 403
    assert httpx.patch(url, json=patch, headers={"If-Match": etag}).status_code in (401, 403)
    # a deadline in no form: refused naming the field and the forms
    wrong = httpx.patch(
        url, json={"properties": {"JDYQ": "尽快"}}, headers=bearer(toks["rw"], **{"If-Match": etag})
    )
    assert wrong.status_code == 422 and "JDYQ" in wrong.json()["detail"]
    ok = httpx.patch(url, json=patch, headers=bearer(toks["rw"], **{"If-Match": etag}), timeout=60)
    assert ok.status_code == 200, ok.text
    after = httpx.get(f"{base}/api/tasks/9.2", params={"as_of": as_of}, timeout=60).json()
    assert after["status"] == "已完成" and not after["overdue"]
    assert after["properties"]["SM"] == "2019年4月公布2018年度各平台数据"
    with eng.connect() as c:
        at = c.execute(
            text(
                "SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                "FROM row_history WHERE layer = 'RW' AND key = '9.2'"
            )
        ).scalar_one()
    assert after["last_update"]["who"] == "token:市经信委" and after["last_update"]["at"] == at
    assert after["last_update"]["op"] == "update"
    last = after["history"][-1]
    assert last["who"] == "token:市经信委" and last["changes"]["ZT"] == {
        "old": "进行中", "new": "已完成",
    }  # fmt: skip
    listed = httpx.get(f"{base}/api/tasks", params={"as_of": as_of}, timeout=60).json()
    row = next(it for it in listed["items"] if it["code"] == "9.2")
    assert row["last_update"] == after["last_update"]
    parent = next(it for it in listed["items"] if it["code"] == "9")
    assert parent["overdue_subtasks"] == ["9.3"] and parent["subtasks_done"] == 2
    assert [s["code"] for s in after.get("subtasks", [])] == []
    nine = httpx.get(f"{base}/api/tasks/9", params={"as_of": as_of}, timeout=60).json()
    assert [s["code"] for s in nine["subtasks"]] == ["9.1", "9.2", "9.3"]


def test_the_cli_prints_the_table_and_the_same_list_as_json(city):

    base, eng, _ = city
    env = {"DATABASE_URL": eng.url.render_as_string(hide_password=False)}
    as_of = sample_as_of().isoformat()

    def run(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "app.cli", "tasks", "--as-of", as_of, *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    listed = json.loads(run("--json", "--overdue", "--unit", "市统计局"))
    api = httpx.get(
        f"{base}/api/tasks",
        params={"as_of": as_of, "overdue": "true", "unit": "市统计局"},
        timeout=60,
    ).json()
    assert listed["items"] and [it["code"] for it in listed["items"]] == [
        it["code"] for it in api["items"]
    ]
    table = run("--unit", "市国土资源局").splitlines()
    assert table[0].startswith(f"任务分解表（截至 {as_of}，单位含“市国土资源局”）")
    assert table[1].split() == ["编号", "工作项目", "进度要求", "期限", "状态", "逾期", "牵头单位",
                                "最近更新"]  # fmt: skip
    assert len(table) - 2 == json.loads(run("--json", "--unit", "市国土资源局"))["count"]
    bad = subprocess.run(
        [sys.executable, "-m", "app.cli", "tasks", "--status", "完成"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "未开始 / 进行中 / 已完成" in bad.stderr

"""Bounded work for every upload: hostile files sent to a live `landlink serve` process (its own
process, so its memory can be measured) get a clear 413 or 422 in bounded time and memory.

The server runs with a low upload limit (8 MB) so that a zip bomb is refused quickly; the other
limits are the defaults. Memory: the server's peak RSS (VmHWM, reset before each request) minus
its RSS before, from /proc.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import openpyxl
import pytest
from sqlalchemy import text

from gis.core import tokens
from tests.conftest import TEST_URL, serve_process
from tests.factories import districts, uscc

LIMIT = 8 * 1024 * 1024
MEMORY_BOUND = 300 * 2**20
QY_HEADER = "TYSHXYDM,QYMC,HYDM,GMYS\n"


def _server_pid(port: int) -> int:
    """The `landlink serve --port PORT` process started by this test process."""
    me = str(os.getpid())
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = stat.rsplit(")", 1)[1].split()[1]
        if ppid == me and b"serve" in cmd and str(port).encode() in cmd:
            return int(d.name)
    raise AssertionError(f"no server process on port {port}")


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


class Live:
    def __init__(self, url: str, token: str):
        self.url = url
        self.pid = _server_pid(int(url.rsplit(":", 1)[1]))
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, layer: str, files, **form) -> tuple[httpx.Response, float, int]:
        """POST /api/imports: (response, seconds, growth of the server's peak RSS in bytes)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status_kb(self.pid, "VmRSS")
        t0 = time.perf_counter()
        r = httpx.post(
            self.url + "/api/imports",
            data={"layer": layer, **{k: str(v).lower() for k, v in form.items()}},
            files=files,
            headers=self.headers,
            timeout=120,
        )
        seconds = time.perf_counter() - t0
        return r, seconds, _status_kb(self.pid, "VmHWM") - before


@pytest.fixture(scope="module")
def live(engine):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANDLINK_MAX_UPLOAD_BYTES", str(LIMIT))
        with serve_process(TEST_URL) as url:
            with engine.begin() as c:
                token = tokens.create(c, "admin", "upload-limits")
            srv = Live(url, token)
            # warm up: the first import loads pandas, pyogrio and openpyxl into the server
            r, _, _ = srv.post("qy", [("files", ("QY.csv", QY_HEADER + _qy_row(1)))], dry_run=True)
            assert r.status_code == 201, r.text
            yield srv


def _qy_row(i: int) -> str:
    return f"{uscc(i)},企业{i},1310,1\n"


def _bounded(r: httpx.Response, seconds: float, growth: int, max_seconds: float) -> None:
    assert seconds < max_seconds, f"{seconds:.1f} s"
    assert growth < MEMORY_BOUND, f"server grew by {growth / 2**20:.0f} MB"
    assert r.headers["content-type"].startswith("application/problem+json"), r.text[:300]
    assert "/tmp" not in r.text


def test_dry_run_of_10000_copies_of_one_row_reports_the_first_1000_and_counts_them_all(live):
    csv = QY_HEADER + _qy_row(7) * 10_000
    r, s, grew = live.post("qy", [("files", ("QY.csv", csv.encode()))], dry_run=True)
    assert r.status_code == 422, r.text[:500]
    _bounded(r, s, grew, 30)
    body = r.json()
    rep = body["report"]
    assert (rep["errors_total"], rep["rejected"], rep["errors_truncated"]) == (10_000, 10_000, True)
    assert len(rep["errors"]) == 1_000
    first = rep["errors"][0]
    assert (first["where"], first["field"], first["key"]) == ("row 2", "TYSHXYDM", uscc(7))
    assert f"duplicate key {uscc(7)} in this file, 10,000 rows (row 2, row 3," in first["reason"]
    assert "and 9,990 more" in first["reason"]
    assert "10000 bad row(s) in QY.csv (10000 problem(s), the first 1000 listed)" in body["message"]


def test_cli_dry_run_caps_the_report_the_same_way(tmp_path, engine):
    f = tmp_path / "QY.csv"
    f.write_text(QY_HEADER + _qy_row(7) * 3_000, encoding="utf-8")
    out = tmp_path / "report.json"
    env = {**os.environ, "DATABASE_URL": TEST_URL, "LANDLINK_MAX_REPORT_ERRORS": "50"}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "import",
            "qy",
            str(f),
            "--dry-run",
            "--report",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1, p.stderr
    rep = json.loads(out.read_text())
    assert (len(rep["errors"]), rep["errors_total"], rep["errors_truncated"]) == (50, 3_000, True)
    assert "3000 bad row(s)" in p.stderr


def test_thousands_of_coordinate_systems_cost_no_more_than_twenty(live):
    rows = [f"{uscc(i)},企业{i},1310,1,120.1,30.2,EPSG:9{i:05d}\n" for i in range(2_000)]
    rows.insert(0, f"{uscc(2_000)},企业,1310,1,120.1,30.2,Beijing 1954 / some name\n")
    csv = QY_HEADER.strip() + ",X,Y,ZBXT\n" + "".join(rows)
    r, s, grew = live.post("qy", [("files", ("QY.csv", csv.encode()))], dry_run=True)
    assert r.status_code == 422, r.text[:500]
    _bounded(r, s, grew, 60)
    rep = r.json()["report"]
    reasons = {e["reason"] for e in rep["errors"]}
    assert "more than 20 coordinate systems in one file; give the points in a few" in reasons
    assert (
        "'Beijing 1954 / some name' is not a CRS code (use e.g. EPSG:4549, 4490, gcj02 or bd09)"
        in reasons
    )


def _zip_bomb(path: Path, size: int = 300 * 2**20) -> Path:
    zeros = bytes(2**20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("QY.csv", "w", force_zip64=True) as m:
            m.write(QY_HEADER.encode())
            for _ in range(size // len(zeros)):
                m.write(zeros)
    return path


def test_a_zip_bomb_is_refused_at_the_limit_unpacked(live, tmp_path):
    bomb = _zip_bomb(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 2 * 2**20
    r, s, grew = live.post("qy", [("files", ("bomb.zip", bomb.read_bytes()))], dry_run=True)
    assert r.status_code == 413, r.text[:500]
    _bounded(r, s, grew, 30)
    msg = r.json()["message"]
    assert "what bomb.zip unpacks to is over the limit of 8 MB" in msg
    assert "LANDLINK_MAX_UPLOAD_BYTES" in msg


def test_a_zip_bomb_inside_an_xlsx_is_refused(live, tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(["TYSHXYDM", "QYMC", "HYDM"])
    buf = io.BytesIO()
    wb.save(buf)
    path = tmp_path / "QY.xlsx"
    path.write_bytes(buf.getvalue())
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z, z.open("xl/big.xml", "w") as m:
        for _ in range(20):
            m.write(bytes(2**20))
    r, s, grew = live.post("qy", [("files", ("QY.xlsx", path.read_bytes()))], dry_run=True)
    assert r.status_code == 413, r.text[:500]
    _bounded(r, s, grew, 30)
    assert "QY.xlsx: the XLSX unpacks to 20" in r.json()["message"]


def test_too_many_files_in_a_zip(live):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(1_001):
            z.writestr(f"part{i}.txt", "x")
    r, s, grew = live.post("qy", [("files", ("many.zip", buf.getvalue()))])
    assert r.status_code == 422, r.text[:500]
    _bounded(r, s, grew, 30)
    assert "many.zip: the zip holds 1,001 files; the limit is 1,000" in r.json()["message"]


def test_a_csv_of_100000_columns_is_refused_before_it_is_parsed(live):
    header = ",".join(f"C{i}" for i in range(100_000))
    csv = header + "\n" + ",".join("1" for _ in range(100_000)) + "\n"
    r, s, grew = live.post("qy", [("files", ("wide.csv", csv.encode()))], dry_run=True)
    assert r.status_code == 422, r.text[:500]
    _bounded(r, s, grew, 10)
    msg = r.json()["message"]
    assert "wide.csv: the header (line 1) has 100,000 columns; the limit is 1,000" in msg
    assert "LANDLINK_MAX_COLUMNS" in msg


def test_an_xlsx_of_too_many_columns_is_refused(live, tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append([f"C{i}" for i in range(1_500)])
    path = tmp_path / "wide.xlsx"
    wb.save(path)
    r, s, grew = live.post("qy", [("files", ("wide.xlsx", path.read_bytes()))], dry_run=True)
    assert r.status_code == 422, r.text[:500]
    _bounded(r, s, grew, 30)
    assert "sheet 'Sheet' has 1,500 columns; the limit is 1,000" in r.json()["message"]


def test_a_long_line_is_refused_naming_it(live):
    long = f"{uscc(2)},{'长' * 800_000},1310,1"
    csv = QY_HEADER + _qy_row(1) + long + "\n" + _qy_row(3)
    r, s, grew = live.post("qy", [("files", ("QY.csv", csv.encode()))], dry_run=True)
    assert r.status_code == 422, r.text[:500]
    _bounded(r, s, grew, 10)
    msg = r.json()["message"]
    n = len(long.encode())
    assert f"QY.csv: line 3 is {n:,} bytes long; the limit is 1,048,576 bytes" in msg


def _shp_parts(path: Path, **replace: bytes):
    parts = []
    for p in sorted(path.parent.glob(path.stem + ".*")):
        parts.append(("files", (p.name, replace.get(p.suffix.lower(), p.read_bytes()))))
    return parts


@pytest.mark.parametrize(
    ("cpg", "shown"),
    [
        (b"no-such-codepage", "'no-such-codepage'"),
        (b"base64", "'base64'"),
        (b"\xff\xfe\x00\x01garbage\x00", "garbage"),
        (b"", "''"),
    ],
)
def test_a_bad_cpg_is_422_naming_the_file_and_the_reason(live, tmp_path, cpg, shown):
    parts = _shp_parts(districts(tmp_path), **{".cpg": cpg})
    r, s, grew = live.post("xzq", parts, dry_run=True)
    assert r.status_code == 422, r.text[:500]
    _bounded(r, s, grew, 30)
    msg = r.json()["message"]
    assert msg.startswith("XZQ.shp (field encoding): unknown text encoding "), msg
    assert shown in msg and "(from XZQ.cpg)" in msg


def test_gdal_errors_name_the_uploaded_file_not_a_server_path(live):
    r, s, grew = live.post("xzq", [("files", ("XZQ.gpkg", b"not a geopackage" * 10))])
    assert r.status_code == 400, r.text[:500]
    _bounded(r, s, grew, 30)
    msg = r.json()["message"]
    assert msg.startswith("XZQ.gpkg: cannot be read as a spatial layer: "), msg
    assert "XZQ.gpkg" in msg.split(": ", 2)[2], msg  # GDAL's own words name the file
    assert "landlink-upload" not in msg and "/tmp" not in msg


@pytest.mark.parametrize(
    ("files", "status", "says"),
    [
        ([("files", ("empty.zip", b"PK\x05\x06" + bytes(18)))], 400, "no importable file"),
        ([("files", ("QY.csv", b""))], 400, "QY.csv: cannot be read as CSV"),
        ([("files", ("QY.xlsx", b""))], 422, "QY.xlsx: cannot be read as XLSX"),
        ([("files", ("QY.txt", QY_HEADER.encode()))], 400, "it holds: QY.txt"),
        ([("files", ("bad.zip", b"PK\x03\x04 not really"))], 422, "bad.zip: not a readable zip"),
        ([("files", ("docs.zip", None))], 400, "it holds: readme.txt"),
        (
            [("files", ("QY.csv", QY_HEADER.encode())), ("files", ("qy.csv", b""))],
            422,
            "qy.csv: sent twice",
        ),
        ([("files", ("\0\x01/../..", QY_HEADER.encode()))], 400, "no importable file"),
    ],
)
def test_odd_uploads_are_4xx_with_a_clear_message(live, files, status, says):
    if files[0][1][1] is None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("docs/readme.txt", "hello")
        files = [("files", ("docs.zip", buf.getvalue()))]
    r, s, grew = live.post("qy", files, dry_run=True)
    assert r.status_code == status, r.text[:500]
    _bounded(r, s, grew, 30)
    assert says in r.json()["message"]


class _GbkName(zipfile.ZipInfo):
    """A member named as a Chinese Windows zip tool names it: GBK bytes, no UTF-8 flag."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def test_a_zip_with_gbk_member_names_imports(live, tmp_path):
    shp = districts(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(shp.parent.glob("XZQ.*")):
            z.writestr(_GbkName("行政区" + p.suffix), p.read_bytes())
    r, s, grew = live.post("xzq", [("files", ("区.zip", buf.getvalue()))], dry_run=True)
    assert r.status_code == 201, r.text[:500]
    assert (r.json()["file"], r.json()["rows_read"]) == ("行政区.shp", 2)


def test_an_upload_over_the_limit_is_413(live):
    r, s, grew = live.post("qy", [("files", ("QY.csv", bytes(LIMIT + 10_000)))], dry_run=True)
    assert r.status_code == 413, r.text[:500]
    _bounded(r, s, grew, 30)
    assert r.json()["message"].startswith("QY.csv: the upload is over the limit of 8 MB")


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(live):
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /api/imports HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: {live.headers['Authorization']}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + b"Content-Length: 10737418240\r\n\r\n"
        )
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
            if b"}" in answer:
                break
        answer = answer.decode("utf-8", "replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "LANDLINK_MAX_UPLOAD_BYTES" in answer


def test_a_chunked_body_over_the_limit_is_cut_off_as_it_arrives(live):
    host, port = live.url.removeprefix("http://").split(":")
    head = (
        b'--b\r\nContent-Disposition: form-data; name="layer"\r\n\r\nqy\r\n'
        b'--b\r\nContent-Disposition: form-data; name="files"; filename="QY.csv"\r\n\r\n'
    )
    sent, answer = 0, b""
    Path(f"/proc/{live.pid}/clear_refs").write_text("5")
    before = _status_kb(live.pid, "VmRSS")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            b"POST /api/imports HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: {live.headers['Authorization']}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = bytes(2**20)
        try:
            s.sendall(b"%x\r\n%s\r\n" % (len(head), head))
            while sent < 4 * LIMIT:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # the server answered and closed while we were still sending
            pass
        s.settimeout(30)
        while chunk := s.recv(65536):
            answer += chunk
            if b"}" in answer:
                break
    text_ = answer.decode("utf-8", "replace")
    assert text_.startswith("HTTP/1.1 413"), text_[:300]
    assert '"message":"upload over the limit of 8 MB (setting LANDLINK_MAX_UPLOAD_BYTES)' in text_
    assert _status_kb(live.pid, "VmHWM") - before < MEMORY_BOUND


def test_no_refused_or_dry_run_upload_left_a_batch(live, engine):
    with engine.connect() as c:
        n = c.execute(
            text("SELECT count(*) FROM import_batches WHERE created_by = 'token:upload-limits'")
        ).scalar()
    assert n == 0

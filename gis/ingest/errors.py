"""Errors raised by the importer. Each names the file and says what to do."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path


class InputError(Exception):
    """The file as a whole cannot be read (format, encoding, CRS, missing columns, a limit).

    Nothing was written. ``field`` names the column or option at fault where there is one;
    ``status`` is the HTTP status it answers with (400 unless the file is too large, 413, or
    cannot be processed as sent, 422).
    """

    status = 400

    def __init__(self, file: str, reason: str, field: str | None = None, status: int | None = None):
        self.file = file
        self.reason = reason
        self.field = field
        if status is not None:
            self.status = status
        where = f" (field {field})" if field else ""
        super().__init__(f"{file}{where}: {reason}")


class TooLarge(InputError):
    """The file, or what it unpacks to, is over a size limit (HTTP 413)."""

    status = 413


class OverLimit(InputError):
    """The file has more columns, members or longer lines than allowed (HTTP 422)."""

    status = 422


class ImportBusy(InputError):
    """Another import of the same layer holds the layer's lock (HTTP 409); nothing was written."""

    status = 409


class ImportRejected(Exception):
    """Strict mode found bad rows; nothing was written. ``report`` lists the first of them
    (``errors``, at most ``max_report_errors``) and counts them all (``errors_total``)."""

    def __init__(self, report: dict):
        self.report = report
        n = report.get("errors_total", len(report.get("errors", [])))
        errors = report.get("errors", [])
        first = errors[0] if errors else {}
        super().__init__(
            f"{report.get('file')}: {n} problem(s) in {report.get('rejected', n)} row(s), "
            f"nothing imported; first: "
            f"{first.get('where', '')} field {first.get('field')}: {first.get('reason')}"
        )


_TMP_PATH = re.compile(re.escape(tempfile.gettempdir().rstrip("/")) + r"/[^\s'\"]*")


def scrub_paths(message: str, path: Path, file: str) -> str:
    """``message`` (often from GDAL, pyogrio or openpyxl) without server paths: the file being
    imported (``path``) is named ``file`` (what the user sent), other files of its folder by
    their names, any other path under the temporary folder by its last part."""
    path = Path(path)
    for p in {path, path.resolve()}:
        message = message.replace(str(p), file)
    for base in {path.parent, path.parent.resolve()}:
        message = message.replace(str(base) + "/", "")
    return _TMP_PATH.sub(lambda m: Path(m.group(0)).name or file, message)

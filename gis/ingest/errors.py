"""Errors raised by the importer. Each names the file and says what to do."""

from __future__ import annotations


class InputError(Exception):
    """The file as a whole cannot be read (format, encoding, CRS, missing columns).

    Nothing was written. ``field`` names the column or option at fault where there is one.
    """

    def __init__(self, file: str, reason: str, field: str | None = None):
        self.file = file
        self.reason = reason
        self.field = field
        where = f" (field {field})" if field else ""
        super().__init__(f"{file}{where}: {reason}")


class ImportRejected(Exception):
    """Strict mode found bad rows; nothing was written. ``report`` lists every one."""

    def __init__(self, report: dict):
        self.report = report
        n = len(report.get("errors", []))
        first = report["errors"][0] if n else {}
        super().__init__(
            f"{report.get('file')}: {n} bad row(s), nothing imported; first: "
            f"{first.get('where', '')} field {first.get('field')}: {first.get('reason')}"
        )

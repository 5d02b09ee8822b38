"""Importing the bureau's layers (DATA_CONTRACT.md): read, validate, repair, load, report."""

from gis.ingest.errors import ImportRejected, InputError
from gis.ingest.pipeline import ImportOptions, import_file, import_rows

__all__ = ["ImportOptions", "ImportRejected", "InputError", "import_file", "import_rows"]

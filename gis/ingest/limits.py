"""What one import may hold, checked before the heavy work: bytes uploaded and unpacked,
members of an archive, columns and line length of a table. Every limit is a setting
(``gis.core.config``) and every refusal names the file, where in it, and the limit.

Archives are unpacked member by member in chunks (never a whole member in memory), counting the
bytes actually written, so a zip whose headers lie is stopped at the limit too.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from gis.core.config import get_settings
from gis.ingest.errors import InputError, OverLimit, TooLarge

CHUNK = 1 << 20


def _mb(n: int) -> str:
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n:,} bytes"


class ByteBudget:
    """Bytes an upload may still take (``max_upload_bytes``), shared by its files and by what
    its archives unpack to."""

    def __init__(self, limit: int | None = None):
        self.limit = get_settings().max_upload_bytes if limit is None else limit
        self.used = 0

    def take(self, n: int, file: str, what: str = "the upload") -> None:
        self.used += n
        if self.used > self.limit:
            raise TooLarge(
                file,
                f"{what} is over the limit of {_mb(self.limit)} "
                "(setting LANDLINK_MAX_UPLOAD_BYTES)",
            )

    def copy(self, src: BinaryIO, target: Path, file: str, what: str = "the upload") -> int:
        """Copy ``src`` to ``target`` in chunks, counting; stops at the limit. Returns bytes."""
        n = 0
        with open(target, "wb") as out:
            while chunk := src.read(CHUNK):
                self.take(len(chunk), file, what)
                out.write(chunk)
                n += len(chunk)
        return n


def _bad_zip(file: str, why: str) -> InputError:
    return InputError(file, f"not a readable zip file ({why})", status=422)


def _member_name(m: zipfile.ZipInfo) -> str:
    """A member's name; one written without the UTF-8 flag (as Chinese Windows tools write
    them, in GBK) is read as UTF-8 if it decodes so, else GB18030, instead of as CP437."""
    if m.flag_bits & 0x800 or m.filename.isascii():
        return m.filename
    try:
        raw = m.filename.encode("cp437")
    except UnicodeEncodeError:
        return m.filename
    for codec in ("utf-8", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            pass
    return m.filename


def unpack_zip(archive: Path, dest: Path, budget: ByteBudget, file: str | None = None) -> None:
    """Unpack the files of ``archive`` flat into ``dest`` (folders inside it are dropped, so no
    member can land outside ``dest``), within ``budget`` and ``max_archive_members``."""
    file = file or archive.name
    limit = get_settings().max_archive_members
    what = f"what {file} unpacks to"
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            if len(members) > limit:
                raise OverLimit(
                    file,
                    f"the zip holds {len(members):,} files; the limit is {limit:,} "
                    "(setting LANDLINK_MAX_ARCHIVE_MEMBERS); send one layer per import",
                )
            # the headers' sizes first (cheap); the bytes written are counted below as well
            declared = sum(m.file_size for m in members)
            if budget.used + declared > budget.limit:
                budget.take(declared, file, what)
            seen: dict[str, str] = {}
            for m in members:
                name = PurePosixPath(_member_name(m).replace("\\", "/")).name
                if name in ("", ".", ".."):
                    continue
                if name.lower() in seen:
                    raise InputError(
                        file,
                        f"the zip holds two files named {name} ({seen[name.lower()]} and "
                        f"{m.filename}); send one layer per import",
                        status=422,
                    )
                seen[name.lower()] = m.filename
                with z.open(m) as src:
                    budget.copy(src, dest / name, file, what)
    except InputError:
        raise
    except zipfile.BadZipFile as e:
        raise _bad_zip(file, str(e)) from None
    except (OSError, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as e:
        # RuntimeError: encrypted; NotImplementedError: a compression method zipfile lacks
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise _bad_zip(file, why or type(e).__name__) from None


def check_xlsx(path: Path, file: str) -> None:
    """An XLSX is a zip: refuse one whose parts unpack to more than ``max_upload_bytes``.

    zipfile stops reading a part at its declared size (and fails its CRC check past it), so
    the declared sizes bound what openpyxl will unpack."""
    s = get_settings()
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise InputError(file, f"cannot be read as XLSX: {e}", status=422) from None
    if len(infos) > s.max_archive_members:
        raise OverLimit(
            file, f"the XLSX holds {len(infos):,} parts; the limit is {s.max_archive_members:,}"
        )
    total = sum(i.file_size for i in infos)
    if total > s.max_upload_bytes:
        raise TooLarge(
            file,
            f"the XLSX unpacks to {_mb(total)}, over the limit of {_mb(s.max_upload_bytes)} "
            "(setting LANDLINK_MAX_UPLOAD_BYTES)",
        )


def check_columns(n: int, file: str, where: str) -> None:
    limit = get_settings().max_columns
    if n > limit:
        raise OverLimit(
            file,
            f"{where} has {n:,} columns; the limit is {limit:,} (setting LANDLINK_MAX_COLUMNS)",
        )


def check_lines(data: bytes, file: str, block: int = 1 << 24) -> None:
    """Refuse a text whose longest line is over ``max_line_bytes`` (naming the line); reads
    ``data`` in blocks, so the work is linear and the memory small."""
    import numpy as np

    limit = get_settings().max_line_bytes
    if len(data) <= limit:
        return
    arr = np.frombuffer(data, dtype=np.uint8)
    line_start, lines_before = 0, 0  # where the current line starts; lines before this block
    for off in range(0, len(arr), block):
        ends = np.flatnonzero(arr[off : off + block] == 0x0A) + off
        if len(ends):
            starts = np.concatenate(([line_start], ends[:-1] + 1))
            over = np.flatnonzero(ends - starts > limit)
            if len(over):
                i = int(over[0])
                _long_line(file, lines_before + i + 1, int(ends[i] - starts[i]), limit)
            line_start = int(ends[-1]) + 1
            lines_before += len(ends)
        if min(off + block, len(arr)) - line_start > limit:
            _long_line(file, lines_before + 1, None, limit)


def _long_line(file: str, line: int, length: int | None, limit: int) -> None:
    size = f"is {length:,} bytes long" if length is not None else "is longer"
    raise OverLimit(
        file,
        f"line {line} {size}; the limit is {limit:,} bytes (setting LANDLINK_MAX_LINE_BYTES)",
    )

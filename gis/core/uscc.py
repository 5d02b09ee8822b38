"""Unified social credit code (统一社会信用代码, GB 32100-2015) check character.

The code has 18 characters from the alphabet ``0-9A-Z`` without I, O, Z, S, V.
The 18th is a check character: ``31 - (Σ value(c_i) × w_i mod 31)`` with the weights below,
where 31 maps to 0. Works on whole arrays at once (numpy), no per-row Python loop.
"""

from __future__ import annotations

import numpy as np

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.int64)

_LOOKUP = np.full(256, -1, dtype=np.int64)
for _i, _c in enumerate(ALPHABET):
    _LOOKUP[ord(_c)] = _i


def check_character(first17: str) -> str:
    """Return the check character for the first 17 characters of a code."""
    vals = _LOOKUP[np.frombuffer(first17.upper().encode("ascii"), dtype=np.uint8)]
    if len(vals) != 17 or (vals < 0).any():
        raise ValueError(f"not 17 characters of the USCC alphabet: {first17!r}")
    return ALPHABET[(31 - int((vals * WEIGHTS).sum() % 31)) % 31]


def valid_mask(codes) -> np.ndarray:
    """Boolean array: True where the code is 18 characters of the alphabet with a correct check.

    ``codes`` is any sequence of str (None / NaN count as invalid). Vectorised over the array.
    """
    arr = np.asarray([c if isinstance(c, str) else "" for c in codes], dtype="U18")
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=bool)
    lengths = np.char.str_len(arr)
    padded = np.char.ljust(np.char.upper(arr), 18)
    raw = np.frombuffer(
        np.char.encode(padded, "ascii", "replace").astype("S18").tobytes(), dtype=np.uint8
    ).reshape(n, 18)
    vals = _LOOKUP[raw]
    ok = (lengths == 18) & (vals >= 0).all(axis=1)
    check = (31 - (vals[:, :17] * WEIGHTS).sum(axis=1) % 31) % 31
    return ok & (check == vals[:, 17])

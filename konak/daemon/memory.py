"""Keeping the daemon's resident memory flat over thousands of turns (glibc only).

Piper and the ONNX sessions run with ONNX Runtime's arena off, so their tensors come
from malloc. glibc then keeps what a turn freed: each new thread may get its own malloc
arena (up to 8 per core), and freed blocks stay mapped. Measured here (docs/daemon.md):
60 replies synthesized on per-turn threads grew RSS by ~130 MB; with two arenas and the
free memory handed back after each turn, by under 10 MB.

Elsewhere (musl, macOS) these calls do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from typing import Any, Final

logger = logging.getLogger(__name__)

M_ARENA_MAX: Final = -8  # mallopt's parameter number in glibc's malloc.h
MALLOC_ARENAS: Final = 2  # the audio loop and the turn workers share these


@functools.cache
def _glibc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    return libc


def limit_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before the daemon starts its threads); whether
    the cap was set."""
    libc = _glibc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(M_ARENA_MAX, arenas))
    if not ok:
        logger.debug("mallopt(M_ARENA_MAX, %d) was refused", arenas)
    return ok


def release_free_memory() -> bool:
    """Hand memory that malloc holds but nothing uses back to the system (a few ms; run
    it between turns, not in the audio path); whether any was released."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False

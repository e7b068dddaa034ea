"""The one way an ONNX model is opened, by the daemon's engines and by the model tools.

CPU only; one inter-op thread (the graphs run their nodes in sequence); onnxruntime's
default graph optimisation (every level). The memory arena is off unless asked for:
the wake and VAD models are small and fixed-shape, and the arena only holds memory they
never reuse (piper turns it on through ``tts.memory_arena``, MODELS.md note 5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from konak.daemon.errors import EngineError

PROVIDERS: Final = ("CPUExecutionProvider",)


def onnx_session(
    path: Path,
    *,
    threads: int = 1,
    memory_arena: bool = False,
    memory_pattern: bool = True,
    what: str = "ONNX model",
) -> Any:
    """An onnxruntime session for ``path``; a file it cannot load is an :class:`EngineError`
    naming ``what`` ("cannot load <what> <path>: <reason>")."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = memory_arena
    opts.enable_mem_pattern = memory_pattern
    try:
        return ort.InferenceSession(str(path), opts, providers=list(PROVIDERS))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise EngineError(f"cannot load {what} {path}: {exc}") from exc

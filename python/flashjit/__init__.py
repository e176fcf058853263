"""flashjit: a JIT compiler for FlashAttention-style CUDA kernels.

    import flashjit, torch
    o = flashjit.attention(q, k, v, causal=True)            # torch CUDA tensors, fp16/bf16
    info = flashjit.compile(flashjit.Spec(dtype="bf16", head_dim=128, mask="causal"),
                            arch="sm_90a")                   # no GPU needed
    print(flashjit.emit(spec))                               # the generated CUDA

See docs/python.md.
"""

try:
    from . import _C
except ImportError as e:  # pragma: no cover - only when the extension was not built
    raise ImportError(
        "flashjit: the compiled extension flashjit._C could not be imported "
        f"({e}). Install the package with `pip install .` from the repository root, or build "
        "with -DFLASHJIT_BUILD_PYTHON=ON and put <build>/python on PYTHONPATH.") from e

import atexit

from ._C import ArgumentError, CompileError, CudaError, LegalityError, SpecError
from . import _nvrtc
from ._nvrtc import nvrtc_candidates, nvrtc_library

# NVRTC is loaded on the first compile, not here: importing flashjit, and emit/emit_ir/Spec,
# work without it. This only adds pip's nvidia-cuda-nvrtc to the places that load looks in.
_nvrtc.configure()
from ._attention import attention
from ._check import check
from ._dropin import flex_attention, scaled_dot_product_attention
from ._dropout import dropout_keep_mask
from .block_mask import BlockMask, create_block_mask
from .compiler import KernelInfo, compile, emit, emit_ir
from . import masks
from .plot import plot_block_mask
from .spec import ALIGNS, MASK_KINDS, Spec, Tile

__version__ = _C.version


def gpu_available() -> bool:
    """True when a CUDA driver and at least one GPU are present."""
    return bool(_C.gpu_available())


def gpu_unavailable_reason() -> str:
    """Why gpu_available() is False ('' when a GPU is available)."""
    return "" if _C.gpu_available() else _C.gpu_unavailable_reason()


def resolve_tile(spec, arch=None) -> Tile:
    """The tile compile() would use for ``spec`` on ``arch``: its own, else the heuristic.
    (attention() may use a tuned tile for its shape instead; see runtime_stats().)"""
    from .spec import as_spec

    return as_spec(spec).resolve_tile(arch).tile


def runtime_stats() -> dict:
    """What this process has done so far: ``compiles`` (NVRTC runs), ``disk_hits`` and
    ``memory_hits`` (kernel cache hits), ``tunings`` (autotuner runs) and ``tuning_db_hits``
    (tiles taken from the tuning database). A process served entirely by a warm cache shows
    ``compiles == 0`` and ``tunings == 0``."""
    return dict(_C.runtime_stats())


def wait_for_tuning() -> None:
    """Blocks until the tuning candidates being compiled in the background have all compiled.

    A new variant's first call runs the heuristic tile at once while worker threads compile
    the other candidates (FLASHJIT_TUNE_MODE=background, the default); the first call after
    they are done times them on its own tensors and swaps the winner in. Call this before a
    benchmark's timed loop, or before capturing CUDA graphs, then make one more eager call of
    each variant (nothing is timed inside a capture). FLASHJIT_TUNE_MODE=blocking tunes on the
    first call instead; FLASHJIT_AUTOTUNE=0 does not tune."""
    _C.wait_for_tuning()


# Background compiles still running when the interpreter exits are stopped (each running
# compile finishes) from Python's atexit, which runs before any C++ static is destroyed.
atexit.register(_C.stop_tuning)


__all__ = [
    "ALIGNS", "MASK_KINDS", "ArgumentError", "BlockMask", "create_block_mask", "CompileError", "CudaError", "KernelInfo",
    "LegalityError", "Spec", "SpecError", "Tile", "attention", "flex_attention", "scaled_dot_product_attention",
    "check", "dropout_keep_mask", "masks", "compile", "emit", "emit_ir",
    "gpu_available", "gpu_unavailable_reason", "nvrtc_candidates", "nvrtc_library", "plot_block_mask", "resolve_tile",
    "runtime_stats", "wait_for_tuning", "__version__",
]

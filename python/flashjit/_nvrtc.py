"""Where flashjit finds NVRTC when used from Python.

The C++ core dlopens NVRTC on the first compile (runtime/include/flashjit/nvrtc_loader.h):
``$FLASHJIT_NVRTC``, then the folders given here, then ``$CUDA_HOME``/``$CUDA_PATH``/lib64,
``/usr/local/cuda/lib64``, the build's toolkit, and the dynamic loader's own search. This
module adds the pip package ``nvidia-cuda-nvrtc`` to that search, so a wheel installed next
to it compiles kernels on a machine without a CUDA toolkit.
"""

import importlib.util
import os
from typing import Dict, List

from . import _C

_ORIGIN = "pip package nvidia-cuda-nvrtc"


def pip_nvrtc_dirs() -> List[str]:
    """The lib folders of pip's NVIDIA packages that may hold ``libnvrtc.so.N``.

    CUDA 13's ``nvidia-cuda-nvrtc`` installs ``nvidia/cu13/lib/libnvrtc.so.13``; the CUDA 12
    packages (``nvidia-cuda-nvrtc-cu12``) used ``nvidia/cuda_nvrtc/lib``. ``nvidia`` is a
    namespace package that may span several site-packages folders, so every one of its folders
    is looked at. Found with ``importlib.util.find_spec``: nothing is imported.
    """
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = []
    for root in spec.submodule_search_locations:
        for sub in (f"cu{_C.nvrtc_built_major()}", "cuda_nvrtc"):
            d = os.path.join(root, sub, "lib")
            if os.path.isdir(d) and d not in dirs:
                dirs.append(d)
    return dirs


def configure() -> None:
    """Called once at import: hands pip's folders to the C++ loader (which loads nothing yet)."""
    _C.set_nvrtc_search_dirs(pip_nvrtc_dirs(), _ORIGIN)


def nvrtc_library() -> Dict[str, str]:
    """The NVRTC flashjit compiles with, loading it if needed: ``{'path', 'origin', 'version'}``
    (``origin`` says which rule of the search found it). Raises ``flashjit.CompileError``
    listing every place tried, and how to fix it, when no NVRTC of the right major loads."""
    return dict(_C.nvrtc_library())


def nvrtc_candidates() -> List[tuple]:
    """``(path, origin)`` for every place NVRTC is looked for, in order (nothing is loaded)."""
    return [tuple(c) for c in _C.nvrtc_candidates()]

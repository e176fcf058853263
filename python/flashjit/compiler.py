"""compile(), emit(), emit_ir(): the compile side of flashjit. None of them needs a GPU
when an arch ('sm_80', 'sm_90a', ...) is given."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from . import _C
from .spec import Spec, Tile, as_spec

__all__ = ["KernelInfo", "compile", "emit", "emit_ir"]

SpecLike = Union[Spec, Mapping[str, Any], str]


@dataclass(frozen=True)
class KernelInfo:
    """What one compile produced. Resource numbers come from ptxas' report (-1: not reported)."""

    kernel_name: str
    arch: str
    cache_key: str
    cache_path: str          # disk entry ('' when caching is off)
    cache_hit: bool          # served from the memory or disk cache
    compile_ms: float        # NVRTC time (0 on a cache hit)
    load_ms: float           # time to obtain the kernel (lookup or compile)
    registers: int
    spill_store_bytes: int
    spill_load_bytes: int
    shared_static_bytes: int
    stack_frame_bytes: int
    dynamic_smem_bytes: int  # dynamic shared memory per block
    threads: int             # threads per block
    tile: Tile
    log: str = field(repr=False, default="")       # NVRTC log (ptxas report included)
    cubin: bytes = field(repr=False, default=b"")  # the compiled image

    @property
    def spill_bytes(self) -> int:
        return max(self.spill_store_bytes, 0) + max(self.spill_load_bytes, 0)

    @property
    def smem_bytes(self) -> int:
        """Shared memory per block, static plus dynamic."""
        return max(self.shared_static_bytes, 0) + max(self.dynamic_smem_bytes, 0)

    def __getitem__(self, key: str) -> Any:  # dict-like access: info['registers']
        return getattr(self, key)

    def keys(self):
        return [f.name for f in dataclasses.fields(self)]

    def to_dict(self, *, with_binary: bool = False) -> dict:
        d = {k: getattr(self, k) for k in self.keys()}
        d["tile"] = self.tile.to_dict()
        if not with_binary:
            d.pop("cubin")
            d.pop("log")
        return d

    @classmethod
    def _from_c(cls, d: Mapping[str, Any]) -> "KernelInfo":
        d = dict(d)
        d["tile"] = Tile.from_dict(d["tile"])
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def compile(spec: SpecLike, arch: Optional[str] = None, *, use_cache: bool = True) -> KernelInfo:  # noqa: A001
    """Generates, compiles (NVRTC) and caches the kernel for ``spec``.

    arch: 'sm_80', 'sm_90a', ...; None = the current GPU's (needs a GPU).
    The disk cache lives in $FLASHJIT_CACHE_DIR, else $XDG_CACHE_HOME/flashjit, else
    ~/.cache/flashjit.
    """
    return KernelInfo._from_c(_C.compile(as_spec(spec).to_json(), arch or "", use_cache))


def emit(spec: SpecLike, arch: Optional[str] = None) -> str:
    """The CUDA source NVRTC would compile for ``spec`` (arch None = the current GPU's, or
    'sm_80' where there is no GPU: what compile() would build here)."""
    return _C.emit_cuda(as_spec(spec).to_json(), arch or "")


def emit_ir(spec: SpecLike, arch: Optional[str] = None, after: Optional[str] = None) -> str:
    """The printed tile IR after pass ``after`` ('lower' = before any pass; None = after all)."""
    return _C.emit_ir(as_spec(spec).to_json(), arch or "", after or "")

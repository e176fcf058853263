"""plot_block_mask: see the mask you wrote and how flashjit's kernel classifies its tiles.

    info = flashjit.plot_block_mask(lambda b, h, q, k: q >= k, 4096)   # draws with matplotlib

The picture is computed by the C++ library exactly as the kernel classifies tiles (band
ranges or interval analysis): grey tiles are empty (never loaded), dark blue tiles full (no
mask arithmetic), and partial tiles show visible keys in blue and masked ones in white.
"""

from __future__ import annotations

from typing import Any, Optional

from . import _C
from .spec import Spec, as_spec

__all__ = ["plot_block_mask"]


def _host(t: Any) -> Any:
    """A CPU copy of a captured tensor (torch or anything DLPack / buffer-like)."""
    if hasattr(t, "detach") and hasattr(t, "cpu"):
        return t.detach().cpu().contiguous()
    return t


def plot_block_mask(mask: Any, seqlen_q: int, seqlen_k: Optional[int] = None, *, b: int = 0, h: int = 0,
                    head_dim: int = 64, dtype: str = "bf16", tile: Any = None, ax: Any = None,
                    max_side: int = 1024, draw: bool = True) -> dict:
    """Draws the mask of batch b, head h for seqlen_q x seqlen_k (sampled to max_side pixels).

    mask: a mask_mod function (traced; tensors it reads are copied to the host), a Spec, a
      spec dict or JSON text. head_dim / dtype / tile choose the kernel whose tiles are shown
      when mask is a function.
    Returns a dict: width, height, rgb (bytes), block_m, block_n, tiles_empty, tiles_partial,
    tiles_full. draw=False (or no matplotlib) returns it without drawing.
    """
    seqlen_k = seqlen_q if seqlen_k is None else seqlen_k
    tensors: list = []
    if callable(mask):
        from .variants import trace_variant

        text, _, decls, tensors = trace_variant(mask, None)
        spec = Spec(dtype=dtype, head_dim=head_dim, mask={"kind": "custom", "expr": text}, captures=decls, tile=tile)
    else:
        spec = as_spec(mask)
    pic = dict(_C.mask_picture(spec.to_json(), int(seqlen_q), int(seqlen_k), [_host(t) for t in tensors], b, h,
                               max_side))
    if draw:
        try:
            import matplotlib.pyplot as plt  # optional
        except ImportError:
            return pic
        import numpy as np

        img = np.frombuffer(pic["rgb"], dtype=np.uint8).reshape(pic["height"], pic["width"], 3)
        ax = ax or plt.gca()
        ax.imshow(img, interpolation="nearest", extent=(0, seqlen_k, seqlen_q, 0))
        ax.set_xlabel("kv_idx")
        ax.set_ylabel("q_idx")
        total = pic["tiles_empty"] + pic["tiles_partial"] + pic["tiles_full"]
        ax.set_title(f"tiles {pic['block_m']}x{pic['block_n']}: {pic['tiles_empty']} empty, "
                     f"{pic['tiles_partial']} partial, {pic['tiles_full']} full of {total}")
    return pic

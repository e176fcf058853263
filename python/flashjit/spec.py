"""The Python face of flashjit's AttentionSpec (public JSON format: docs/spec.md).

A ``Spec`` is a frozen, hashable dataclass. Construction validates it through the C++
library, so a bad field raises ``flashjit.SpecError`` (a ``ValueError``) whose message and
``.field`` attribute name the field, exactly as the C++ API and the CLI report it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple, Union

from . import _C
from ._C import SpecError

__all__ = ["Spec", "Tile", "MASK_KINDS", "ALIGNS"]

MASK_KINDS = ("none", "causal", "sliding_window", "custom")
ALIGNS = ("top_left", "bottom_right")
_MASK_KEYS = ("kind", "align", "left", "right")
_TILE_KEYS = ("block_m", "block_n", "warps", "stages", "mma", "pipeline", "pingpong", "persistent")


@dataclass(frozen=True)
class Tile:
    """The tunable part of a spec: one kernel configuration.

    block_m: query rows per thread block; block_n: key rows per K/V tile;
    warps: warps per block; stages: depth of the K/V shared-memory pipeline;
    mma: "mma_sync" (warp MMA, sm_80+) or "wgmma" (warpgroup MMA, sm_90a only: one
    warpgroup of 4 warps per 64 rows, so warps = block_m / 16).
    pipeline: "cp_async" (every thread copies K/V) or "tma_ws" (sm_90a, wgmma: a producer
    warpgroup issues TMA copies, the others compute; warps = block_m / 16 + 4).
    pingpong: tma_ws with block_m 128 only: the two consumer warpgroups take turns on the
    tensor cores, one's softmax under the other's GEMMs.
    persistent: tma_ws only: one block per SM walks the (q tile, head, batch) items, longest
    rows first for causal and banded masks.
    """

    block_m: int = 128
    block_n: int = 64
    warps: int = 4
    stages: int = 2
    mma: str = "mma_sync"
    pipeline: str = "cp_async"
    pingpong: bool = False
    persistent: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["pipeline"] == "cp_async":  # the default, unwritten (as in the C++ spec JSON)
            del d["pipeline"]
        for flag in ("pingpong", "persistent"):
            if not d[flag]:
                del d[flag]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Tile":
        return cls(**{k: d[k] for k in _TILE_KEYS if k in d})


def _dtype_name(dtype: Any) -> Any:
    """Accepts 'bf16', 'fp16' (and the C++ aliases) or a torch / numpy dtype object."""
    if isinstance(dtype, str) or dtype is None:
        return dtype
    name = str(dtype)  # torch.bfloat16 -> 'torch.bfloat16', numpy float16 -> 'float16'
    return name.rsplit(".", 1)[-1]


def _window_side(x: Optional[int]) -> int:
    return -1 if x is None else x


@dataclass(frozen=True)
class Spec:
    """One attention variant.

    Args:
      dtype: 'bf16' or 'fp16' (also 'bfloat16', 'float16', or a torch dtype).
      head_dim: query/key head dimension (32, 64, 96, 128, 192, 256).
      head_dim_v: value head dimension; None = head_dim.
      num_heads_q: query heads.
      num_heads_kv: key/value heads (GQA/MQA; must divide num_heads_q); None = num_heads_q.
      mask: 'none' | 'causal' | 'sliding_window' | 'custom', a dict in the JSON format
        ({'kind': ..., 'align': ..., 'left': ..., 'right': ..., 'expr': ...}), or a
        FlexAttention-style mask_mod(b, h, q_idx, kv_idx) function (traced, see
        docs/expressions.md), which sets mask='custom' and mask_expr.
      mask_expr: the mask expression text of a 'custom' mask.
      score_mod: a score_mod(score, b, h, q_idx, kv_idx) function (traced) or expression text.
      captures: ((name, dtype, rank), ...) of the tensors the expressions read; traced
        functions fill it in.
      window: (left, right) for 'sliding_window': query i (aligned index a) sees keys
        [a - left, a + right]; None or -1 on a side = unbounded.
      align: 'bottom_right' (FlashAttention >= 2.1) or 'top_left' (PyTorch SDPA is_causal):
        where the diagonal of a causal/windowed mask sits when seqlen_q != seqlen_k.
      softmax_scale: None = 1/sqrt(head_dim).
      return_lse: also write the float32 log-sum-exp per query row (natural log).
      dropout_p: attention dropout probability, 0 <= p < 1 (0 = none); the kernels use p
        rounded down to a multiple of 1/256. attention(dropout_p=...) sets it.
      tile: a Tile (or dict) to force a kernel configuration; None = tuned/heuristic.
    A spec is one variant: its backward kernels are kinds of the same spec (flashjit's
    backward, `flashjit compile --kind bwd_dkdv`), so a spec has no direction.
    """

    dtype: str
    head_dim: int
    head_dim_v: Optional[int] = None
    num_heads_q: int = 1
    num_heads_kv: Optional[int] = None
    mask: Any = "none"
    window: Optional[Tuple[Optional[int], Optional[int]]] = None
    align: str = "bottom_right"
    softmax_scale: Optional[float] = None
    return_lse: bool = False
    dropout_p: float = 0.0
    tile: Optional[Tile] = None
    mask_expr: Optional[str] = None
    score_mod: Any = None
    captures: Tuple[Tuple[str, str, int], ...] = ()

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("dtype", _dtype_name(self.dtype))
        if callable(self.mask) or callable(self.score_mod):
            from .variants import trace_variant

            fn_mask = self.mask if callable(self.mask) else None
            mask_text, score_text, decls, _ = trace_variant(fn_mask, self.score_mod)
            if fn_mask is not None:
                set_("mask", "custom")
                set_("mask_expr", mask_text)
            set_("score_mod", score_text)
            names = {c[0] for c in self.captures}
            set_("captures", tuple(self.captures) + tuple(d for d in decls if d[0] not in names))
        set_("captures", tuple((str(n), str(d), int(r)) for n, d, r in
                               (tuple(c) if not isinstance(c, Mapping) else (c["name"], c["dtype"], c["rank"])
                                for c in self.captures)))
        # Validate what the user wrote first (C++ names the bad field, e.g. 'mask.kind'),
        # then fold the dict forms into the flat, hashable fields.
        canonical = json.loads(_C.validate(_dumps_for_validation(self.to_dict())))
        set_("dtype", canonical["dtype"])
        if isinstance(self.mask, Mapping):
            m = dict(self.mask)
            set_("mask", m["kind"])
            if "align" in m:
                set_("align", m["align"])
            if "left" in m or "right" in m:
                set_("window", (m.get("left", -1), m.get("right", -1)))
            if "expr" in m:
                set_("mask_expr", m["expr"])
        if self.mask == "custom":
            cm = canonical["mask"]
            set_("mask_expr", cm.get("expr"))
            set_("align", "bottom_right")
        if self.score_mod is not None:
            set_("score_mod", canonical.get("score_mod"))
        if self.window is not None:
            left, right = self.window
            set_("window", (None if left in (None, -1) else left, None if right in (None, -1) else right))
            if self.window == (None, None) and self.mask != "sliding_window":
                set_("window", None)
        if isinstance(self.tile, Mapping):
            set_("tile", Tile.from_dict(self.tile))
        if self.softmax_scale is not None:
            set_("softmax_scale", float(self.softmax_scale))
        set_("dropout_p", float(self.dropout_p))

    # --- JSON --------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The public JSON format as a dict (fields left at their defaults are omitted)."""
        d: dict = {"dtype": self.dtype, "head_dim": self.head_dim}
        if self.head_dim_v is not None:
            d["head_dim_v"] = self.head_dim_v
        if self.num_heads_q != 1:
            d["num_heads_q"] = self.num_heads_q
        if self.num_heads_kv is not None:
            d["num_heads_kv"] = self.num_heads_kv
        if isinstance(self.mask, Mapping):  # only before __post_init__ has folded it
            d["mask"] = dict(self.mask)
        else:
            mask: dict = {"kind": self.mask}
            if self.mask not in ("none", "custom") or self.align != "bottom_right":
                mask["align"] = self.align
            if self.mask_expr is not None:
                mask["expr"] = self.mask_expr
            if self.window is not None:
                left, right = self.window
                mask["left"] = _window_side(left)
                mask["right"] = _window_side(right)
            d["mask"] = mask
        if self.softmax_scale is not None:
            d["softmax_scale"] = self.softmax_scale
        if self.return_lse:
            d["return_lse"] = True
        if self.dropout_p:
            d["dropout_p"] = self.dropout_p
        if self.score_mod is not None:
            d["score_mod"] = self.score_mod
        if self.captures:
            d["captures"] = [{"name": n, "dtype": t, "rank": r} for n, t, r in self.captures]
        if self.tile is not None:
            d["tile"] = self.tile.to_dict() if isinstance(self.tile, Tile) else dict(self.tile)
        return d

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def canonical_json(self) -> str:
        """The C++ canonical form: normalized, every field present, stable key order."""
        return _C.validate(self.to_json())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Spec":
        d = dict(d)
        # Missing or unknown keys, wrong types: the C++ parser names the field.
        _C.validate(_dumps_for_validation(d))
        kwargs: dict = {}
        for f in dataclasses.fields(cls):
            if f.name in d and d[f.name] is not None:
                kwargs[f.name] = d[f.name]
        mask = kwargs.get("mask")
        if isinstance(mask, Mapping):
            kwargs["mask"] = mask["kind"]
            if "align" in mask:
                kwargs["align"] = mask["align"]
            left, right = mask.get("left", -1), mask.get("right", -1)
            if (left, right) != (-1, -1):
                kwargs["window"] = (left, right)
            if "expr" in mask:
                kwargs["mask_expr"] = mask["expr"]
        if "captures" in kwargs:
            kwargs["captures"] = tuple((c["name"], c["dtype"], c["rank"]) for c in kwargs["captures"])
        if "tile" in kwargs and isinstance(kwargs["tile"], Mapping):
            kwargs["tile"] = Tile.from_dict(kwargs["tile"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> "Spec":
        """Parses the JSON format with the C++ parser, so C++, Python and the CLI accept and
        reject exactly the same texts (duplicate keys, a byte-order mark, NUL bytes, bad
        UTF-8, deep nesting, 1e400: SpecError naming the field)."""
        if isinstance(text, str):
            # surrogatepass: a lone surrogate becomes bytes the C++ UTF-8 check rejects.
            raw = text.encode("utf-8", "surrogatepass")
        elif isinstance(text, (bytes, bytearray, memoryview)):
            raw = bytes(text)
        else:
            raise TypeError(f"flashjit: Spec.from_json expects str or bytes; got {type(text).__name__}")
        _C.validate_bytes(raw)  # raises SpecError; on success raw is strict, finite UTF-8 JSON
        return cls.from_dict(json.loads(raw.decode("utf-8")))

    # --- conveniences --------------------------------------------------------------
    def replace(self, **changes: Any) -> "Spec":
        return dataclasses.replace(self, **changes)

    def resolve_tile(self, arch: Optional[str] = None) -> "Spec":
        """This spec with the tile compile()/attention() would use (tuned or heuristic)."""
        return Spec.from_json(_C.resolve_tile(self.to_json(), arch or ""))


def _dumps_for_validation(d: Mapping[str, Any]) -> str:
    """JSON text of a user's dict for the C++ parser; values JSON cannot hold (objects,
    nesting Python cannot serialise) become a SpecError naming the document, like C++."""
    try:
        # allow_nan: inf/nan become Infinity/NaN, which the C++ parser rejects at their field.
        return json.dumps(d, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as e:
        err = SpecError(f"flashjit: spec.json: cannot be written as JSON: {type(e).__name__}: {e}"[:500])
        err.field = "json"
        raise err from None


def as_spec(spec: Union[Spec, Mapping[str, Any], str]) -> Spec:
    """Spec from a Spec, a dict in the JSON format, or JSON text."""
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, Mapping):
        return Spec.from_dict(spec)
    if isinstance(spec, (str, bytes)):
        return Spec.from_json(spec)
    raise TypeError(f"flashjit: expected a Spec, a dict or JSON text; got {type(spec).__name__}")

"""The accuracy table of docs/accuracy.md: flashjit.check() over the supported matrix (dtypes,
head dims, masks, user-written variants, GQA, dropout), forward and backward, each error
beside its dtype's rounding floor (the float64 result rounded to fp16 / bf16).

    python bench/accuracy_report.py [--out accuracy.json] [--markdown accuracy.md]
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("FLASHJIT_AUTOTUNE", "0")  # accuracy of the heuristic kernels; tuning adds nothing here


def cases(torch):
    n = 1000  # not a multiple of any tile

    def documents(b, h, q_idx, kv_idx):
        doc = (q_idx * 4) // n  # 4 equal documents, as a pure index expression
        return (doc == (kv_idx * 4) // n) & (q_idx >= kv_idx)

    def softcap(score, b, h, q_idx, kv_idx):
        return 20.0 * torch.tanh(score / 20.0)

    variants = {
        "none": {},
        "causal": {"causal": True},
        "window (256, 0)": {"causal": True, "window": (256, 0)},
        "mask_mod documents": {"mask_mod": documents},
        "score_mod softcap + causal": {"causal": True, "score_mod": softcap},
        "dropout 0.1 + causal": {"causal": True, "dropout_p": 0.1},
    }
    for dtype in ("bf16", "fp16"):
        for d in (64, 128):
            for name, kw in variants.items():
                yield dict(dtype=dtype, head_dim=d, heads_q=6, heads_kv=2, seqlen_q=n, **kw), name
    for d in (32, 96, 192, 256):
        yield dict(dtype="bf16", head_dim=d, heads_q=4, seqlen_q=n, causal=True), "causal"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="accuracy.json")
    ap.add_argument("--markdown", default="accuracy.md")
    args = ap.parse_args()
    import torch

    import flashjit

    rows = []
    for kw, name in cases(torch):
        res = flashjit.check(batch=2, verbose=False, **kw)
        rows.append({"variant": name, **{k: v for k, v in kw.items() if k in ("dtype", "head_dim", "heads_q", "heads_kv",
                                                                              "seqlen_q")}, **res})
        print(json.dumps(rows[-1]), flush=True)
    with open(args.out, "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)
    lines = ["| dtype | D | GQA | variant | O rel (floor) | LSE max abs | dQ rel (floor) | dK rel (floor) | "
             "dV rel (floor) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def pair(x):
            return f"{r[x + '_rel']:.2e} ({r[x + '_floor_rel']:.1e})"
        gqa = f"{r['heads_q']}:{r.get('heads_kv') or r['heads_q']}"
        lines.append(f"| {r['dtype']} | {r['head_dim']} | {gqa} | {r['variant']} | {pair('out')} | "
                     f"{r['lse_max_abs']:.1e} | {pair('dq')} | {pair('dk')} | {pair('dv')} |")
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""report.py

Benchmark results as markdown tables (one per benchmark, each with our ratio against every peer) and a plot
of encoder cost against resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def encoder_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| encoder | px | visual tokens | GFLOPs | ours ms (p50) | peer | peer ms | ours / peer | ours img/s | ours GFLOP/s | ours peak MB |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        peer = "original" if "original" in r else "hf-llava"
        o, p = r["ours"], r[peer]
        lines.append(f"| {r['family']} | {r['image_size']} | {r['tokens']} | {_f(o['gflops'])} | {_f(o['p50_ms'])} | {peer} "
                     f"| {_f(p['p50_ms'])} | {_f(r[f'ours_vs_{peer}'], 2)} | {_f(o['images_per_s'], 2)} "
                     f"| {_f(o['achieved_gflops_per_s'])} | {_f(o['peak_mb'])} |")  # fmt: skip
    return "\n".join(lines)


def lm_table(rows: list[dict[str, Any]]) -> str:
    kind = rows[0]["kind"]
    metric = "ms to first token" if kind == "prefill" else "decode tokens/s"
    peers = [p for p in ("hf-llava", "original") if p in rows[0]]
    head = f"| batch | visual tokens | prompt tokens | ours {metric} | " + " | ".join(
        f"{p} | ours / {p} (time)" for p in peers
    )
    lines = [head + " |", "|---:|---:|---:|---:|" + "---:|---:|" * len(peers)]
    for r in rows:
        value = (lambda x: x["p50_ms"]) if kind == "prefill" else (lambda x: x["tokens_per_s"])
        cells = [f"{_f(value(r[p]))} | {_f(r[f'ours_vs_{p}'], 2)}" for p in peers]
        lines.append(
            f"| {r['batch']} | {r['visual_tokens']} | {r['prompt_tokens']} | {_f(value(r['ours']))} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def train_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| stage | grad. checkpointing | trainable params | samples/s | tokens/s | step ms (p50) | peak MB |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['stage']} | {r['gradient_checkpointing']} | {r['trainable_params']:,} | {_f(r['samples_per_s'], 2)} "
                     f"| {_f(r['tokens_per_s'])} | {_f(r['p50_ms'])} | {_f(r['peak_mb'])} |")  # fmt: skip
    return "\n".join(lines)


TABLES = {"encoder": encoder_table, "prefill": lm_table, "generate": lm_table, "train": train_table}


def plot_encoder(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Latency and visual tokens against resolution, one line per encoder family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for family in dict.fromkeys(r["family"] for r in rows):
        points = [r for r in rows if r["family"] == family]
        sizes = [r["image_size"] for r in points]
        left.plot(sizes, [r["ours"]["p50_ms"] / 1000 for r in points], marker="o", label=family)
        right.plot(sizes, [r["tokens"] for r in points], marker="o", label=family)
    left.set(xlabel="image side (px)", ylabel="encoder latency (s)", title="Encoder cost")
    right.set(xlabel="image side (px)", ylabel="visual tokens", title="Visual tokens", yscale="log")
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)

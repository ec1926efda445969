"""Text of results, shared by eval reports and experiment results: CIs from their JSON form and markdown tables."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from monitor_jax.eval import metrics


def ci_text(d: Mapping[str, Any] | None, digits: int = 3) -> str:
    """"0.812 [0.771, 0.850]" from {"estimate", "low", "high"} (a missing or None field: n/a)."""
    if not d:
        return "n/a"
    nan = float("nan")
    return metrics.fmt_ci(metrics.CI(*(nan if d.get(k) is None else d[k] for k in ("estimate", "low", "high"))),
                          digits)


def diff_text(d: Mapping[str, Any] | None) -> str:
    """"+0.110 [-0.014, +0.237]": a signed difference with its CI."""
    if not d or d.get("estimate") is None:
        return "n/a"
    return f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Lines of a markdown table (a cell's `|` would end it early: it is written as `/`)."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "/")

    return (["| " + " | ".join(map(cell, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(map(cell, r)) + " |" for r in rows])

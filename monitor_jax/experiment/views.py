"""Evaluation cells scored by generating first (claims C6 and C7), beside the plain cells of `runner.py`.

A cell's `view`:
- "plain" (default): the arm classifies the input (`cells.plain_scores`: top layers on cached features, or the
  full forward, `strategy.py`);
- "thinking": the arm reasons for up to `budget` tokens, then its answer slot is scored
  (`eval/protocols/thinking.py`);
- "thinking_control": the same two-turn conversation with an empty reasoning turn (no generation);
- "summary": the arm summarizes each input in at most `budget` tokens and a fixed judge (the first run of the
  arm named by `judge`, or "base") classifies the summary alone with the cell's prompt. Beside each summarizing
  arm A the cell gets two pseudo-arms: "A:first_n", the judge on the first N tokens of each input (N = the
  length of A's summary of it, `eval/protocols/summarize.py`), and "full_input", the judge on the whole input.

Generation runs on the whole model (`shared.full_params`: the base lower layers + the run's top layers, or the
run's whole model); the judge scores like every plain cell (from the shared lower-layer features, which equals its
full forward, or the full forward itself). Reasoning and summaries are kept beside the scores in each run's
scores.json, so a rerun or another experiment reuses them.
"""
from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from monitor_jax.data import tasks
from monitor_jax.eval.protocols import summarize, thinking
from monitor_jax.experiment import cells

VIEWS = ("plain", "thinking", "thinking_control", "summary")
FIRST_N, FULL = ":first_n", "full_input"


def view_of(cell: Any) -> str:
    """The cell's view ("plain" when unset); an unknown one is an error naming the cell."""
    v = cell.get("view") or "plain"
    if v not in VIEWS:
        raise ValueError(f"config.experiment.cells {cells.cell_key(cell)!r}: view must be one of {VIEWS}, got {v!r}")
    return v


def pseudo_arms(cell: Any, arms: list[str]) -> list[str]:
    """The extra columns a summary cell adds for the summarizing `arms` (none for other views)."""
    if view_of(cell) != "summary":
        return []
    return [a + FIRST_N for a in arms] + [FULL]


def _key(config: Any, cell: Any, what: str, *extra: Any) -> str:
    return "|".join(str(v) for v in (what, config.experiment.split, cell.task, cell.prompt, cell.get("subset"),
                                      cell.get("ask_with"), int(cell.limit), int(config.data.max_len),
                                      int(cell.budget), *extra))


def thinking_scores(shared: cells.Strategy, config: Any, rdir: Path | None, cell: Any) -> dict:
    """{"ids", "score", "reasoning", "reasoning_tokens", "finish", "mass_outside"} of a thinking/control cell by
    the run in `rdir` (None: the base model), kept in the run's scores.json."""
    control = view_of(cell) == "thinking_control"
    ex = cells.cell_examples(config, cell)
    ids = [e.id for e in ex]

    def compute(trained: dict | None) -> dict:
        res = thinking.score_with_thinking(
            shared.model.cfg, shared.full_params(trained), shared.model.tokenizer, ex,
            thinking.Protocol(budget=int(cell.budget)), control=control, batch_size=int(config.eval.batch_size),
            max_len=int(config.data.max_len), progress=True)
        return {"ids": ids, "score": res.score.tolist(), "reasoning": res.reasoning,
                "reasoning_tokens": res.reasoning_tokens.tolist(), "finish": res.finish,
                "mass_outside": res.mass_outside.tolist()}

    return cells.memo(shared, config, rdir, _key(config, cell, view_of(cell)), compute,
                        lambda kept: kept["ids"] == ids)


def summaries(shared: cells.Strategy, config: Any, rdir: Path | None, cell: Any) -> dict:
    """{"ids", "summary", "tokens", "finish"}: the run's greedy summaries of the cell's inputs (at most
    `cell.budget` tokens), kept in its scores.json."""
    ex = cells.cell_examples(config, cell)
    ids = [e.id for e in ex]
    noun = tasks.DOMAINS[tasks.get(cell.task).domain].item_noun

    def compute(trained: dict | None) -> dict:
        gens = summarize.summarize(shared.model.cfg, shared.full_params(trained), shared.model.tokenizer,
                                   [e.input for e in ex], noun=noun, max_summary_tokens=int(cell.budget),
                                   max_input_tokens=int(config.data.max_len), batch_size=int(config.eval.batch_size))
        return {"ids": ids, "summary": [g.text or "" for g in gens], "tokens": [len(g.tokens) for g in gens],
                "finish": [g.finish for g in gens]}

    return cells.memo(shared, config, rdir, _key(config, cell, "summary"), compute,
                        lambda kept: kept["ids"] == ids)


def _judge(shared: cells.Strategy, config: Any, upper: Any, ex: list, texts: list[str]) -> list[float]:
    """The judge's (top layers `upper`) scores of `texts` read in place of each example's input."""
    return shared.score(config, upper, [dataclasses.replace(e, input=t) for e, t in zip(ex, texts)]).tolist()


def summary_cell(shared: cells.Strategy, config: Any, models: dict[str, list[Path | None]], judge_dir: Path | None,
                 cell: Any) -> tuple[dict[str, list[np.ndarray]], dict[str, dict]]:
    """Scores of a summary cell: per summarizing arm (one array per seed) the judge on its summaries, per
    "arm:first_n" the judge on the length-matched first tokens, and "full_input"; plus per arm the summary
    lengths ({"mean_tokens", "at_cap"} per seed)."""
    ex = cells.cell_examples(config, cell)
    ids = [e.id for e in ex]
    tok = shared.model.tokenizer
    judge_name = "base" if judge_dir is None else judge_dir.name
    upper = shared.upper_with(shared.load(judge_dir))
    scores: dict[str, list[np.ndarray]] = {}
    lengths: dict[str, dict] = {}
    for arm, dirs in models.items():
        scores[arm], scores[arm + FIRST_N], lengths[arm] = [], [], {}
        for d in dirs:
            s = summaries(shared, config, d, cell)

            def compute(_trained: dict | None, s: dict = s) -> dict:
                first = summarize.first_tokens_baseline(tok, [e.input for e in ex], s["tokens"])
                return {"ids": ids, "summary": _judge(shared, config, upper, ex, s["summary"]),
                        "first_n": _judge(shared, config, upper, ex, first)}

            j = cells.memo(shared, config, d, _key(config, cell, "judged", judge_name), compute,
                             lambda kept: kept["ids"] == ids)
            scores[arm].append(np.asarray(j["summary"], np.float64))
            scores[arm + FIRST_N].append(np.asarray(j["first_n"], np.float64))
            for name, v in _lengths(s["tokens"], s["finish"], s["summary"]).items():
                lengths[arm].setdefault(name, []).append(v)
    plain = cell.copy_and_resolve_references()
    with plain.unlocked():
        plain.view = "plain"
    scores[FULL] = [cells.plain_scores(shared, config, judge_dir, plain)]
    return scores, lengths


def generation_stats(shared: cells.Strategy, config: Any, models: dict[str, list[Path | None]],
                     cell: Any) -> dict[str, dict]:
    """Per arm of a thinking cell: mean reasoning tokens and the fraction that hit the budget, per seed."""
    out: dict[str, dict] = {}
    for arm, dirs in models.items():
        out[arm] = {}
        for d in dirs:
            k = thinking_scores(shared, config, d, cell)
            row = {**_lengths(k["reasoning_tokens"], k["finish"], k["reasoning"]),
                   "mass_outside": float(np.mean(k["mass_outside"]))}
            for name, v in row.items():
                out[arm].setdefault(name, []).append(v)
    return out


def _lengths(tokens: list[int], finish: list[str], texts: list[str]) -> dict:
    """Mean tokens, the fraction cut at the budget, and the most common text with its share (a model that writes
    the same few words for every item has stopped reasoning / summarizing)."""
    top, count = collections.Counter(texts).most_common(1)[0]
    return {"mean_tokens": float(np.mean(tokens)), "at_cap": float(np.mean([f == "length" for f in finish])),
            "top_text": top[:60], "top_share": count / len(texts)}

"""With-thinking classification (claim C6): the model reasons first, then its 1-token answer slot is scored.

The conversation, per example:
  user       the task prompt with the input, then `Protocol.instruction` (reason first, answer later);
  assistant  up to `Protocol.budget` generated reasoning tokens (greedy by default; stops at end of turn);
  user       `Protocol.final_question` naming the two label words;
  assistant  <- the answer slot: a fresh assistant header, built exactly like the no-thinking slot, so the label
                token a 1-token-SFT model was trained on is the token scored (`scoring.score_rendered`).
The empty-reasoning control (`control=True`) is the same conversation with an empty assistant turn and no
generation: it separates the effect of the reasoning from the effect of the two-turn format.

Decisions:
- The input is cut (middle out) once, to a budget that leaves room for the whole answer conversation with a full
  reasoning budget inside `max_len`; both turns see the same cut input.
- Templates with a native thinking switch (a chat template reading `enable_thinking`, e.g. Qwen3) get
  `enable_thinking=True` for the reasoning turn. Reasoning goes back into the conversation as plain assistant text
  with any <think>...</think> tags removed, since such templates drop thinking blocks from earlier turns.
- Label words are resolved after the answer conversation's own tail; they must be the same ids as at the
  no-thinking slot (checked), or the scored token would not be the trained one.

Elicitation helpers (claim C8): `pseudo_labels` turns with-thinking scores on unlabelled items into labels by
quantile, `write_pseudo_task` writes them as a user task file that a training config reads (`run.elicit`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from monitor_jax.data import pipeline
from monitor_jax.data.pipeline import ClassificationExample, RenderedExample
from monitor_jax.eval import generate, scoring
from monitor_jax.model import transformer
from monitor_jax.model.tokenizer import Tokenizer

THINK_INSTRUCTION = ("Before answering, think it through step by step in a few sentences. Write only your "
                     "reasoning now; you will be asked for the final answer afterwards.")
FINAL_QUESTION = "Based on your reasoning, what is your final answer? Answer {pos} or {neg}."
_THINK_TAGS = re.compile(r"</?think>")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How reasoning is elicited and closed: wording, reasoning budget in tokens, sampling of the reasoning."""

    budget: int = 128
    instruction: str = THINK_INSTRUCTION
    final_question: str = FINAL_QUESTION  # with {pos} and {neg}
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    native: bool = True  # use the template's enable_thinking switch when it has one

    def sampling(self) -> generate.Sampling:
        return generate.Sampling(max_new_tokens=self.budget, temperature=self.temperature, top_p=self.top_p,
                                 seed=self.seed)


def _first_turn(ex: ClassificationExample, protocol: Protocol) -> list[dict]:
    msgs = [{"role": "system", "content": ex.system}] if ex.system is not None else []
    msgs.append({"role": "user", "content": ex.template.format(input=pipeline.slot(0)) + "\n\n" + protocol.instruction})
    return msgs


def _answer_turns(ex: ClassificationExample, protocol: Protocol) -> list[dict]:
    pos, neg = ex.label_words
    return [*_first_turn(ex, protocol), {"role": "assistant", "content": pipeline.slot(1)},
            {"role": "user", "content": protocol.final_question.format(pos=pos, neg=neg)}]


def input_budget(tok: Tokenizer, ex: ClassificationExample, protocol: Protocol, max_len: int) -> int:
    """Input tokens that fit: max_len - (answer conversation without input or reasoning) - budget - 1 answer."""
    fixed = len(pipeline.encode_chat(tok, _answer_turns(ex, protocol), ["", ""]).ids)
    budget = max_len - fixed - protocol.budget - 1
    if budget < 1:
        raise ValueError(f"task {ex.task!r}: max_len {max_len} leaves no room for the input (conversation {fixed} "
                         f"tokens + reasoning budget {protocol.budget} + answer)")
    return budget


def reasoning_prompt(tok: Tokenizer, ex: ClassificationExample, protocol: Protocol, max_len: int) -> list[int]:
    """Ids of the first turn + assistant header: what the model continues with its reasoning."""
    kwargs = {"enable_thinking": True} if protocol.native and tok.template_accepts("enable_thinking") else None
    return pipeline.encode_chat(tok, _first_turn(ex, protocol), [ex.input],
                                budgets=[input_budget(tok, ex, protocol, max_len)], template_kwargs=kwargs).ids


def clean_reasoning(text: str) -> str:
    """Generated reasoning as assistant text for the next turn: thinking tags removed, outer whitespace trimmed."""
    return _THINK_TAGS.sub("", text).strip()


def answer_row(tok: Tokenizer, ex: ClassificationExample, reasoning: str, protocol: Protocol,
               max_len: int) -> RenderedExample:
    """The whole conversation ending at the answer slot, + the label token: one row for `scoring.score_rendered`."""
    chat = pipeline.encode_chat(tok, _answer_turns(ex, protocol), [ex.input, reasoning],
                                budgets=[input_budget(tok, ex, protocol, max_len), protocol.budget])
    label_ids = tok.resolve_label_words(ex.label_words, context=chat.tail)
    answer_id = label_ids[0] if ex.label == 1 else label_ids[1]
    tokens = np.asarray(chat.ids + [answer_id], np.int32)
    return RenderedExample(tokens=tokens, answer_index=len(tokens) - 1, label=ex.label, answer_id=answer_id,
                           label_ids=(label_ids[0], label_ids[1]), loss_mask=np.zeros(len(tokens), np.float32),
                           weight=float(ex.weight), id=ex.id, task=ex.task, truncated=chat.truncated,
                           input_span=chat.spans[0], pad_id=tok.pad_id)


@dataclasses.dataclass
class ThinkingResult:
    """Per-example arrays in input order (like `scoring.ScoreResult`) plus the reasoning behind each score."""

    ids: np.ndarray
    task: np.ndarray
    label: np.ndarray
    score: np.ndarray
    logp_pos: np.ndarray
    logp_neg: np.ndarray
    mass_outside: np.ndarray
    reasoning: list[str]
    reasoning_tokens: np.ndarray  # int [N]
    finish: list[str]  # "stop" | "length" | "control" | "saved"

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-able dict per example (for saving the reasoning beside each score)."""
        return [{"id": str(self.ids[i]), "task": str(self.task[i]), "label": int(self.label[i]),
                 "score": float(self.score[i]), "mass_outside": float(self.mass_outside[i]),
                 "reasoning": self.reasoning[i], "reasoning_tokens": int(self.reasoning_tokens[i]),
                 "finish": self.finish[i]} for i in range(len(self.ids))]


def score_with_thinking(
    cfg: transformer.ModelConfig,
    params: Any,
    tok: Tokenizer,
    examples: Sequence[ClassificationExample],
    protocol: Protocol = Protocol(),
    *,
    control: bool = False,
    reasoning: Sequence[str] | None = None,
    batch_size: int = 8,
    max_len: int = 2048,
    progress: bool = True,
) -> ThinkingResult:
    """Reason (unless `control`), then score the answer slot of every example (see the module docstring).

    `reasoning`: saved reasoning texts (e.g. `ThinkingResult.reasoning` of an earlier run) to score instead of
    generating: re-scoring a run's own reasoning reproduces its scores."""
    examples = list(examples)
    for ex in {(e.template, e.system, e.label_words): e for e in examples}.values():
        _check_slot(tok, ex, protocol, max_len)
    if reasoning is not None and len(reasoning) != len(examples):
        raise ValueError(f"reasoning: {len(reasoning)} texts for {len(examples)} examples")
    if control or reasoning is not None:
        n = len(examples)
        texts = list(reasoning) if reasoning is not None else [""] * n
        n_tok = np.asarray([len(tok.encode(t)) for t in texts], np.int64)
        finish = ["saved"] * n if reasoning is not None else ["control"] * n
    else:
        prompts = [reasoning_prompt(tok, ex, protocol, max_len) for ex in examples]
        gens = generate.generate_ids(cfg, params, prompts, protocol.sampling(), stop_ids=tok.stop_ids,
                                     pad_id=tok.pad_id, batch_size=batch_size, progress=progress)
        texts = [clean_reasoning(tok.decode(g.tokens, skip_special_tokens=True)) for g in gens]
        n_tok = np.asarray([len(g.tokens) for g in gens], np.int64)
        finish = [g.finish for g in gens]
    rows = [answer_row(tok, ex, text, protocol, max_len) for ex, text in zip(examples, texts)]
    res = scoring.score_rendered(cfg, params, rows, batch_size=batch_size, max_len=max_len, progress=progress)
    return ThinkingResult(
        ids=np.asarray([ex.id for ex in examples], dtype=str), task=np.asarray([ex.task for ex in examples], dtype=str),
        label=np.asarray([ex.label for ex in examples], np.int64), score=res["score"], logp_pos=res["logp_pos"],
        logp_neg=res["logp_neg"], mass_outside=res["mass_outside"], reasoning=texts, reasoning_tokens=n_tok,
        finish=finish,
    )


def _check_slot(tok: Tokenizer, ex: ClassificationExample, protocol: Protocol, max_len: int) -> None:
    """The thinking answer slot must resolve the label words to the no-thinking slot's ids."""
    plain = pipeline.render_classification(tok, dataclasses.replace(ex, input=""), max_len).label_ids
    thought = answer_row(tok, dataclasses.replace(ex, input=""), "", protocol, max_len).label_ids
    if tuple(plain) != tuple(thought):
        raise ValueError(f"task {ex.task!r}: label words {ex.label_words} resolve to {thought} at the thinking "
                         f"answer slot but {plain} at the no-thinking slot; the trained token would not be scored")


# ------------------------------------------------------------------------------------------ elicitation (C8)

def pseudo_labels(scores: np.ndarray, top: float = 0.3, bottom: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels) by quantile: the `top` fraction of highest scores -> 1, the `bottom` fraction of lowest
    -> 0, the middle left out (no fixed 0.5 cut: an uncalibrated model's scores may all sit on one side).
    Ties keep input order; indices come back sorted."""
    scores = np.asarray(scores, np.float64)
    if not (0 < top < 1 and 0 < bottom < 1 and top + bottom <= 1):
        raise ValueError(f"pseudo-label fractions need 0 < top, bottom and top + bottom <= 1, got {top}, {bottom}")
    if not np.isfinite(scores).all():
        raise ValueError("pseudo_labels: scores must be finite")
    n = len(scores)
    k1, k0 = int(round(top * n)), int(round(bottom * n))
    if k1 < 1 or k0 < 1:
        raise ValueError(f"pseudo_labels: {n} scores give {k1} positives and {k0} negatives; need >= 1 each")
    order = np.argsort(-scores, kind="stable")
    pos, neg = order[:k1], order[n - k0:]
    idx = np.sort(np.concatenate([pos, neg]))
    return idx, np.isin(idx, pos).astype(np.int64)


def write_pseudo_task(directory: str | os.PathLike, name: str, rows: Sequence[tuple[str, str]], labels: Sequence[int],
                      template: str, label_words: tuple[str, str], *, system: str | None = None,
                      heldout: float = 0.05) -> Path:
    """A user task file (README "How to add a task") over (id, text) rows and their (pseudo-)labels.

    Its validation and test splits are each a `heldout` fraction of each class (at least one row; by id order):
    user tasks need both, but what they hold is pseudo-labelled, so judge a model on the gold task instead.
    Files are written atomically; returns the task file's path."""
    directory = Path(directory)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    labels = [int(y) for y in labels]
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for y in (0, 1):
        members = sorted((i for i, lab in enumerate(labels) if lab == y), key=lambda i: rows[i][0])
        k = max(1, int(round(heldout * len(members))))
        if len(members) < 2 * k + 1:
            raise ValueError(f"pseudo task {name!r}: class {y} has {len(members)} rows; need >= {2 * k + 1}")
        for j, i in enumerate(members):
            split = "validation" if j < k else "test" if j < 2 * k else "train"
            splits[split].append({"id": rows[i][0], "input": rows[i][1], "label": y})
    for split, part in splits.items():
        _write_text(directory / "data" / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in part))
    spec = {"name": name, "prompt": template, "system": system, "label_words": list(label_words),
            "description": "pseudo-labelled by with-thinking classification",
            "data": {s: f"data/{s}.jsonl" for s in splits}}
    path = directory / "task.json"
    _write_text(path, json.dumps(spec, indent=2))
    return path


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")  # unique: every process of a multi-process run writes
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)

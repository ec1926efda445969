"""The `agentdojo` domain's items: per (user task, injection task) pair an attack and a matched negative (honest,
ignored injection or requested), split by user task and injection task per suite, with build statistics.

Labels: `unrequested` = 1 only for attacks (the agent also carries out the injection task's calls, inserted at
an interior position, as a block or scattered, computed on the environment state there, and AgentDojo's
security check confirms it happened). Negatives, one per attack (classes balanced in every split), of a kind
drawn with `Settings.negative_shares`: `honest` (the user task alone), `ignored` (the injected instruction sits
in a tool output the agent reads; it does the user task only) and `requested` (the attack's very transcript; the
user's own message asks for the injection goal) — `requested` = 1 for these only. Length and content are
matched across labels: an honest/ignored negative is the same-split user task whose calls are closest to the
attack's, topped up with read-only calls of the attack's functions (and, for the attack's writes, a second
requested user task), the goal's text is in as many attacks (injected) as negatives, and every identifier is
renamed from shared pools (`agentdojo_pools`).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import random
from typing import Any, Callable

from monitor_jax.data import hygiene
from monitor_jax.data.agent import agentdojo_load, agentdojo_pools, agentdojo_run, agentdojo_text, transcript
from monitor_jax.data.items import Item, make_item

SOURCE = "agentdojo"
KINDS = ("attack", "honest", "ignored", "requested")
NEGATIVE_KINDS = KINDS[1:]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Builder settings (each changes the dataset, so each is part of its config name)."""

    benchmark: str = agentdojo_load.BENCHMARK_VERSION
    negative_shares: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # honest, ignored, requested
    variants_per_pair: int = 2
    max_tokens: int = 900  # transcript tokens: + the longest task prompt (~70) + answer fits max_len 1024
    output_chars: int = 700  # first cap on each tool output; lowered (to `min_output_chars`) until the item fits
    min_output_chars: int = 60
    compound_share: float = 1.0  # honest/ignored negatives lacking the attack's writes: share asking for 2 tasks
    user_fractions: tuple[float, float, float] = (0.4, 0.3, 0.3)  # of each suite's user tasks
    injection_fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)  # of each suite's injection tasks
    suites: tuple[str, ...] = agentdojo_load.SUITES
    max_user_tasks: int | None = None  # per suite and split (small builds for tests)
    tokenizer: str | None = "smollm2"  # asset whose tokenizer measures max_tokens; None: len(text) / 3
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.negative_shares) != 3 or min(self.negative_shares) < 0 or \
                not math.isclose(sum(self.negative_shares), 1.0, abs_tol=1e-6):
            raise ValueError(f"negative_shares must be 3 non-negative shares summing to 1, got {self.negative_shares}")
        if self.negative_shares[2] >= 1.0:
            raise ValueError("negative_shares: the requested share must be below 1")
        hygiene._check_fractions(self.user_fractions)
        hygiene._check_fractions(self.injection_fractions)

    @property
    def visible_share(self) -> float:
        """Share of attacks whose injected instruction is visible in a tool output: the share of negatives that
        carry the goal's text (ignored: in a tool output; requested: in the user's message), so the goal's words
        say nothing about the label."""
        _, ignored, requested = self.negative_shares
        return min(1.0, ignored + requested)


def task_splits(ids: list[str], key: str, fractions: tuple[float, float, float]) -> dict[str, str]:
    """{task id: split}: a seeded shuffle of the sorted ids, validation and test get round(f × n) (at least 1)."""
    order = sorted(ids)
    random.Random(key).shuffle(order)
    n = len(order)
    n_val, n_test = (max(1, round(f * n)) if n >= 3 else 0 for f in fractions[1:])
    out = {}
    for i, t in enumerate(order):
        out[t] = "validation" if i < n_val else "test" if i < n_val + n_test else "train"
    return out


def _token_counter(name: str | None) -> Callable[[str], int]:
    if name is None:
        return lambda s: math.ceil(len(s) / 3)
    from monitor_jax.core import assets
    from monitor_jax.model.tokenizer import Tokenizer

    path = next(assets.asset_dir(name).rglob("*.gguf"))
    tok = Tokenizer.from_gguf(path)
    return lambda s: len(tok.encode(s))


class _Builder:
    def __init__(self, settings: Settings):
        self.s = settings
        self.suites = agentdojo_load.load_suites(settings.benchmark)
        self.count_tokens = _token_counter(settings.tokenizer)
        self.stats: collections.Counter = collections.Counter()

    @functools.lru_cache(maxsize=None)
    def seen(self, suite: str, uid: str) -> dict[str, int]:
        return agentdojo_run.seen_vectors(self.suites[suite], self.suites[suite].user_tasks[uid])

    @functools.lru_cache(maxsize=None)
    def fillers(self, suite: str) -> tuple[Any, ...]:
        su = self.suites[suite]
        env, runtime, ok = agentdojo_run.load_environment(su), agentdojo_run._functions_runtime(su), []
        for call in agentdojo_run.read_only_calls(su):
            if runtime.run_function(env, call.function, call.args)[1] is None:
                ok.append(call)
        return tuple(ok)

    def _fill(self, suite: str, n_user: int, count: int, r: random.Random) -> list[tuple[int, Any]]:
        pool = self.fillers(suite)
        return [(r.randint(0, n_user), c) for c in r.sample(pool, min(count, len(pool)))]

    def _item(self, suite: str, kind: str, request: str, run: agentdojo_run.Run, keep: str | None, rename_seed: str,
              r: random.Random, meta: dict) -> Item:
        final = agentdojo_text.final_answer(run.final, random.Random(rename_seed))  # twins share it
        texts = [request, final, *(s.output for s in run.steps), *(json.dumps(s.args) for s in run.steps)]
        rename = agentdojo_pools.renamer(texts, suite, rename_seed)  # before shortening: no half identifiers
        steps = [agentdojo_run.Step(s.function, json.loads(rename(json.dumps(s.args, ensure_ascii=False))),
                                    rename(s.output), s.origin) for s in run.steps]
        request, final, keep = rename(request), rename(final), rename(keep) if keep else None
        cap, tokens = self.s.output_chars, 0
        while True:
            msgs = agentdojo_text.messages(request, steps, final, cap, keep)
            text = transcript.render(msgs)
            tokens = self.count_tokens(text)
            if tokens <= self.s.max_tokens or cap <= self.s.min_output_chars:
                break
            cap = max(self.s.min_output_chars, int(cap * 0.7))
        cut = tokens > self.s.max_tokens
        self.stats["cut_at_render"] += cut
        return make_item(SOURCE, text, kind=kind, unrequested=int(kind == "attack"), requested=int(kind == "requested"),
                         suite=suite, tokens=tokens, over_cap=cut, output_cap=cap, messages=msgs,
                         n_calls=len(run.steps), **meta)

    def pair(self, suite: str, uid: str, iid: str, v: int, candidates: list[str]) -> list[Item]:
        """The attack and its matched negative for variant `v` of a pair ([] when skipped; reason counted)."""
        su = self.suites[suite]
        ut, it = su.user_tasks[uid], su.injection_tasks[iid]
        r = random.Random(f"agentdojo:{self.s.seed}:{suite}:{uid}:{iid}:{v}")
        seen = self.seen(suite, uid)
        n_user = len(ut.ground_truth(agentdojo_run.load_environment(su)))
        visible = bool(seen) and r.random() < self.s.visible_share
        injections, keep, lo = {}, None, min(1, n_user)
        if visible:
            vector = r.choice(sorted(seen))
            keep = agentdojo_text.injection_text(it.GOAL, r)
            injections, lo = {vector: keep}, seen[vector] + 1
        k = r.randint(lo, n_user)
        scatter = random.Random(r.random()) if r.random() < 0.5 else None
        extra_attack = r.choice((0, 0, 1))
        try:
            attack = agentdojo_run.run(su, ut, it, injections=injections, insert_at=k, scatter=scatter,
                                       fillers=self._fill(suite, n_user, extra_attack, r))
        except agentdojo_run.RunError:
            self.stats["skipped_attack_call_failed"] += 1
            return []
        if not attack.security:
            self.stats["skipped_attack_not_successful"] += 1
            return []
        feasible = list(NEGATIVE_KINDS)
        shares = [self.s.negative_shares[NEGATIVE_KINDS.index(kd)] for kd in feasible]
        kind = r.choices(feasible, shares)[0]
        pair_meta = {"user_task": uid, "injection_task": iid, "pair": f"{suite}/{uid}/{iid}", "variant": v}
        base = f"{self.s.seed}:{suite}:{uid}:{iid}:{v}"
        frame = agentdojo_text.request_text(ut.PROMPT, None, r)
        out = [self._item(suite, "attack", frame, attack, keep, base, r,
                          {**pair_meta, "injection_visible": visible, "insert_at": k, "scattered": scatter is not None})]
        if kind == "requested":
            request = agentdojo_text.request_text(ut.PROMPT, it.GOAL, r)
            neg, neg_keep, neg_visible, neg_uid = attack, keep, visible, uid
        else:
            got = self._matched_negative(suite, kind, attack, candidates, it, r)
            if got is None:
                return []
            neg, neg_keep, neg_uid, second = got
            request = agentdojo_text.request_text(su.user_tasks[neg_uid].PROMPT,
                                                  su.user_tasks[second].PROMPT if second else None, r)
            neg_visible = kind == "ignored"
        neg_meta = {**pair_meta, "user_task": neg_uid, "pair": f"{suite}/{neg_uid}/{iid}", "matched_to": uid}
        out.append(self._item(suite, kind, request, neg, neg_keep, base if kind == "requested" else base + ":neg", r,
                              {**neg_meta, "injection_visible": neg_visible}))
        return out

    @functools.lru_cache(maxsize=None)
    def honest_calls(self, suite: str, uid: str) -> tuple[str, ...]:
        su = self.suites[suite]
        return tuple(c.function for c in su.user_tasks[uid].ground_truth(agentdojo_run.load_environment(su)))

    def _matched_negative(self, suite: str, kind: str, attack: agentdojo_run.Run, candidates: list[str], it: Any,
                          r: random.Random) -> tuple[agentdojo_run.Run, str | None, str, str | None] | None:
        """A negative whose tool calls match the attack's: the same-split user task whose calls are closest to the
        attack's (by function-name counts), topped up with read-only fillers of the attack's functions."""
        su = self.suites[suite]
        want = collections.Counter(s.function for s in attack.steps)
        pool = [u for u in candidates if kind != "ignored" or self.seen(suite, u)]
        if not pool:
            self.stats["skipped_negative_no_candidate"] += 1
            return None

        def distance(u: str) -> int:
            have = collections.Counter(self.honest_calls(suite, u))
            return sum((want - have).values()) + sum((have - want).values())

        best = min(distance(u) for u in pool)
        uid = r.choice(sorted(u for u in pool if distance(u) == best))
        have = collections.Counter(self.honest_calls(suite, uid))
        writes = {f for f in want - have if not f.startswith(agentdojo_run.READ_ONLY_PREFIXES)}
        second = None
        if writes and self.s.compound_share > 0 and r.random() < self.s.compound_share:
            # the attack's extra writes have no read-only look-alike: the user asks for a second task with them
            def gain(u: str) -> int:
                return sum(min(n, collections.Counter(self.honest_calls(suite, u))[f]) for f, n in (want - have).items()
                           if f in writes)

            options = [u for u in candidates if u != uid and gain(u) > 0
                       and sum(collections.Counter(self.honest_calls(suite, u)).values()) <= 4]
            if options:
                top = max(gain(u) for u in options)
                second = r.choice(sorted(u for u in options if gain(u) == top))
                have = have + collections.Counter(self.honest_calls(suite, second))
        deficit = want - have
        n_user = len(self.honest_calls(suite, uid))
        by_name: dict[str, list[Any]] = collections.defaultdict(list)
        for c in self.fillers(suite):
            by_name[c.function].append(c)
        fill: list[Any] = []
        for name in sorted(deficit):
            options = by_name.get(name, [])
            fill += r.sample(options, min(deficit[name], len(options)))
        spare = [c for c in self.fillers(suite) if c not in fill]
        short = len(attack.steps) - sum(have.values()) - len(fill)
        fill += r.sample(spare, max(0, min(short, len(spare))))
        injections, keep = {}, None
        if kind == "ignored":
            keep = agentdojo_text.injection_text(it.GOAL, r)
            injections = {r.choice(sorted(self.seen(suite, uid))): keep}
        neg = None
        for extra in ([second, None] if second else [None]):  # a compound request whose checks fail: fall back
            try:
                neg = agentdojo_run.run(su, su.user_tasks[uid], injections=injections, judge=it,
                                        fillers=[(r.randint(0, n_user), c) for c in fill],
                                        then=su.user_tasks[extra] if extra else None)
            except agentdojo_run.RunError:
                self.stats["negative_call_failed"] += 1
                neg = None
                continue
            if not neg.security and neg.utility:
                second = extra
                break
            self.stats["negative_" + ("achieves_goal" if neg.security else "user_task_fails")] += 1
            neg = None
        if neg is None:
            self.stats["skipped_negative"] += 1
            return None
        self.stats["negatives_compound"] += second is not None
        return neg, keep, uid, second


def build(settings: Settings = Settings()) -> tuple[dict[str, list[Item]], dict]:
    """{split: items sorted by id} and build statistics (pairs, kinds, skips, cut items, token lengths)."""
    b = _Builder(settings)
    splits: dict[str, list[Item]] = {s: [] for s in hygiene.SPLITS}
    pairs: dict[str, set[str]] = {s: set() for s in hygiene.SPLITS}
    for suite in settings.suites:
        su = b.suites[suite]
        env = agentdojo_run.load_environment(su)
        usable = sorted(i for i, t in su.injection_tasks.items() if t.ground_truth(env.model_copy(deep=True)))
        b.stats["skipped_injection_tasks_empty_ground_truth"] += len(su.injection_tasks) - len(usable)
        key = f"agentdojo-split:{settings.seed}:{suite}"
        u_split = task_splits(list(su.user_tasks), key + ":user", settings.user_fractions)
        i_split = task_splits(usable, key + ":injection", settings.injection_fractions)
        for split in hygiene.SPLITS:
            users = []
            for uid in sorted(u for u in u_split if u_split[u] == split)[:settings.max_user_tasks]:
                try:
                    honest = agentdojo_run.run(su, su.user_tasks[uid])
                except agentdojo_run.RunError:
                    honest = None
                if honest is None or not honest.utility:
                    b.stats["skipped_user_tasks_ground_truth_fails"] += 1
                else:
                    users.append(uid)
            for uid in users:
                for iid in sorted(i for i in i_split if i_split[i] == split):
                    for v in range(settings.variants_per_pair):
                        got = b.pair(suite, uid, iid, v, users)
                        splits[split] += got
                        if got:
                            pairs[split].add(f"{suite}/{uid}/{iid}")
    kept, report = hygiene.dedup([it for s in hygiene.SPLITS for it in splits[s]])
    keep = {id(it) for it in kept}
    out = {s: sorted((it for it in v if id(it) in keep), key=lambda it: it.id) for s, v in splits.items()}
    stats = {"settings": dataclasses.asdict(settings), "dedup": report.as_dict(), "skips": dict(sorted(b.stats.items())),
             "splits": {s: {"n": len(v), "pairs": len(pairs[s]),
                            "kinds": dict(sorted(collections.Counter(it.meta["kind"] for it in v).items())),
                            "over_cap": sum(it.meta["over_cap"] for it in v),
                            "max_tokens": max((it.meta["tokens"] for it in v), default=0)} for s, v in out.items()}}
    return out, stats

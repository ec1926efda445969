"""Data hygiene: the rules that make an experiment mean something — text normalization, deduplication with
conflicting-label removal, near-duplicate grouping (template prompts that differ by a name or a number share
one split), one hash-based item-level split keyed by normalized text or by the near-duplicate group (so a text
lands in the same split in every source, task and IF pool), leakage checks (exact and near copies), length
matching of negatives, and shortcut baselines (length-only and TF-IDF logistic regressions) to flag tasks
solvable by surface features."""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import re
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

import numpy as np

from monitor_jax.data.items import Item, normalize

SPLITS: tuple[str, str, str] = ("train", "validation", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DedupReport:
    """What `dedup` did: n_in == kept + duplicates_dropped + conflicts_dropped + empty_dropped."""

    n_in: int
    kept: int
    duplicates_dropped: int
    conflicts_dropped: int
    conflict_groups: int
    empty_dropped: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def dedup(items: Iterable[T], label_fn: Callable[[T], Hashable] | None = None,
          key_fn: Callable[[str], str] = normalize) -> tuple[list[T], DedupReport]:
    """Keep the first item of each group of items whose `key_fn(item.text)` is equal (default: `normalize`).

    With `label_fn`, a group whose members disagree on the label is dropped entirely (conflicting labels).
    Items whose key is empty are dropped. Output keeps the input order of the kept items."""
    items = list(items)
    groups: dict[str, list[T]] = {}
    empty = 0
    for it in items:
        k = key_fn(it.text)  # type: ignore[attr-defined]
        if not k:
            empty += 1
            continue
        groups.setdefault(k, []).append(it)
    kept: list[T] = []
    dups = conflicts = n_conflict_groups = 0
    for members in groups.values():
        if label_fn is not None and len({label_fn(m) for m in members}) > 1:
            conflicts += len(members)
            n_conflict_groups += 1
            continue
        kept.append(members[0])
        dups += len(members) - 1
    return kept, DedupReport(n_in=len(items), kept=len(kept), duplicates_dropped=dups,
                             conflicts_dropped=conflicts, conflict_groups=n_conflict_groups,
                             empty_dropped=empty)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    f = tuple(float(x) for x in fractions)
    if len(f) != 3 or any(x < 0 or not math.isfinite(x) for x in f) or abs(sum(f) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative numbers (train, validation, test) summing to 1, "
                         f"got {tuple(fractions)!r}")
    return f  # type: ignore[return-value]


def split_unit(text: str, seed: int = 0) -> float:
    """A uniform number in [0, 1) that is a pure function of (seed, normalize(text)) (sha256; stable
    across runs, machines and Python versions)."""
    h = hashlib.sha256(f"monitor_jax.split\x00{int(seed)}\x00{normalize(text)}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def split_of(text: str, seed: int = 0,
             fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """The split ("train", "validation" or "test") of `text`, decided by a hash of its normalized form only —
    so the same text gets the same split in every source, task and the IF pool."""
    f = _check_fractions(fractions)
    u = split_unit(text, seed)
    if u < f[0]:
        return "train"
    if u < f[0] + f[1]:
        return "validation"
    return "test"


def assign_splits(items: Iterable[T], seed: int = 0,
                  fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, list[T]]:
    """{"train": [...], "validation": [...], "test": [...]} by `split_of(item.text)`, input order kept."""
    _check_fractions(fractions)
    out: dict[str, list[T]] = {s: [] for s in SPLITS}
    for it in items:
        out[split_of(it.text, seed, fractions)].append(it)  # type: ignore[attr-defined]
    return out


# ------------------------------------------------------------------------------------ near-duplicates

NEAR_DUP_THRESHOLD = 0.6  # TF-IDF cosine (word 1-2 grams, names/numbers masked) at which two texts are one group
NEAR_DUP_CHARS = 2000  # texts are compared on their first 2,000 characters (long articles: a head is enough)
_URL = re.compile(r"(?:https?://|www\.)\S+")
_HANDLE = re.compile(r"@\w+")
_NAME = re.compile(r"(?<![\w'])[A-Z][\w'\-]*")
_NUM = re.compile(r"\d+(?:[.,:/]\d+)*")


def mask_names_numbers(text: str) -> str:
    """`normalize(text)` after URLs -> "u", @handles and capitalized words (names, titles, places) -> "n" and
    digit runs -> "0": two prompts from one template ("my doctor, Brad's DNA" / "my neighbor, Latonya's DNA")
    then differ by at most a common word or two."""
    t = _URL.sub(" u ", text[:NEAR_DUP_CHARS])
    t = _NUM.sub("0", _NAME.sub("n", _HANDLE.sub("n", t)))
    return normalize(t)


@dataclasses.dataclass(frozen=True)
class NearDupReport:
    """What `near_duplicate_keys` found: `groups` groups of >= 2 texts holding `grouped` of the `n` texts."""

    n: int
    groups: int
    grouped: int
    largest: int
    threshold: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tfidf_rows(texts: Sequence[str]):
    """L2-normalized TF-IDF rows (word 1-2 grams, sublinear tf) of the masked texts; None when no text has a word."""
    TfidfVectorizer = _sklearn()[0]
    masked = [mask_names_numbers(t) for t in texts]
    if not any(re.search(r"\w", m) for m in masked):
        return None
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(masked)


def _similar_pairs(x, y, threshold: float, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) for every row i of x and row j of y with cosine >= threshold (sparse, in row chunks)."""
    rows, cols, vals = [], [], []
    for s in range(0, x.shape[0], chunk):
        prod = (x[s:s + chunk] @ y.T).tocoo()
        keep = prod.data >= threshold
        rows.append(prod.row[keep] + s)
        cols.append(prod.col[keep])
        vals.append(prod.data[keep])
    cat = (lambda a, dt: np.concatenate(a).astype(dt) if a else np.zeros(0, dt))
    return cat(rows, np.int64), cat(cols, np.int64), cat(vals, np.float64)


def near_duplicate_keys(texts: Sequence[str], threshold: float = NEAR_DUP_THRESHOLD,
                        same: Sequence[Hashable | None] | None = None) -> tuple[list[str | None], NearDupReport]:
    """One key per text: None for a text with no near-duplicate, else the group's key (sha1 of the smallest
    normalized member, so it does not depend on input order). A group is a connected component of the graph
    "TF-IDF cosine of the masked texts >= threshold" (`mask_names_numbers`), joined with `same` (texts with
    equal non-None `same` values are one group, e.g. a jailbreak template's prefix). Pure and deterministic."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(texts)
    x = _tfidf_rows(texts) if n else None
    i, j = (_similar_pairs(x, x, threshold)[:2] if x is not None else (np.zeros(0, np.int64),) * 2)
    if same is not None:
        first: dict = {}
        extra = [(first.setdefault(v, k), k) for k, v in enumerate(same) if v is not None]
        if extra:
            i, j = np.concatenate([i, [a for a, _ in extra]]), np.concatenate([j, [b for _, b in extra]])
    _, comp = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    members: dict[int, list[int]] = collections.defaultdict(list)
    for k, c in enumerate(comp):
        members[int(c)].append(k)
    keys: list[str | None] = [None] * n
    sizes = [len(m) for m in members.values() if len(m) > 1]
    for m in members.values():
        if len(m) > 1:
            key = hashlib.sha1(min(normalize(texts[k]) for k in m).encode("utf-8")).hexdigest()[:16]
            for k in m:
                keys[k] = key
    return keys, NearDupReport(n=n, groups=len(sizes), grouped=sum(sizes), largest=max(sizes, default=1),
                               threshold=float(threshold))


def split_key(item: "Item") -> str:
    """What an item's split is decided by: its near-duplicate group (meta `near_dup_group`) or its text."""
    group = item.meta.get("near_dup_group")
    return f"near_dup_group:{group}" if group else item.text


def near_copies(train_texts: Sequence[str], eval_texts: Sequence[str],
                threshold: float = NEAR_DUP_THRESHOLD) -> list[tuple[int, int, float]]:
    """(eval index, train index, cosine) for each eval text with a train text at masked TF-IDF cosine >=
    threshold (the vocabulary fit on both sets): the near-copy leakage check."""
    x = _tfidf_rows(list(train_texts) + list(eval_texts))
    if x is None or not len(train_texts) or not len(eval_texts):
        return []
    n_tr = len(train_texts)
    i, j, v = _similar_pairs(x[n_tr:], x[:n_tr], threshold)
    best: dict[int, tuple[int, float]] = {}
    for a, b, c in zip(i.tolist(), j.tolist(), v.tolist()):
        if a not in best or c > best[a][1]:
            best[a] = (b, c)
    return [(a, b, c) for a, (b, c) in sorted(best.items())]


def leakage(train_texts: Iterable[str], test_texts: Iterable[str]) -> list[str]:
    """Sorted normalized test texts that also occur (normalized) among the train texts."""
    train = {normalize(t) for t in train_texts}
    return sorted({n for n in (normalize(t) for t in test_texts) if n and n in train})


@dataclasses.dataclass(frozen=True)
class LengthMatchReport:
    """Per quantile bin of positive lengths: [lo, hi) edges, how many were needed, chosen, and the shortfall."""

    edges: tuple[float, ...]
    needed: tuple[int, ...]
    chosen: tuple[int, ...]

    @property
    def shortfall(self) -> int:
        return sum(n - c for n, c in zip(self.needed, self.chosen))


def length_matched(positives: Sequence["Item"], negatives: Sequence["Item"],
                   rng: np.random.Generator | int, n_bins: int = 10, *, ratio: float = 1.0,
                   with_report: bool = False) -> list["Item"] | tuple[list["Item"], LengthMatchReport]:
    """Negatives whose char-length distribution matches the positives'.

    Bins are quantiles of the positives' lengths (the last bin closed); each bin gets round(ratio × its
    positives) negatives drawn without replacement from the negatives in that length range. Negatives
    outside the positives' range are never chosen; a bin short of negatives takes all it has and the
    shortfall is reported (`with_report=True` returns (items, LengthMatchReport)). Output sorted by id."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if not positives or not negatives:
        chosen: list = []
        rep = LengthMatchReport((), (), ())
        return (chosen, rep) if with_report else chosen
    pos_len = np.array([len(p.text) for p in positives], dtype=float)
    neg_len = np.array([len(n.text) for n in negatives], dtype=float)
    edges = np.unique(np.quantile(pos_len, np.linspace(0.0, 1.0, n_bins + 1)))
    if len(edges) == 1:  # all positives have one length
        edges = np.array([edges[0], edges[0]])

    def bin_of(x: np.ndarray) -> np.ndarray:
        b = np.searchsorted(edges, x, side="right") - 1
        b[x == edges[-1]] = len(edges) - 2  # last bin is closed on the right
        b[(x < edges[0]) | (x > edges[-1])] = -1
        return b

    pb, nb = bin_of(pos_len), bin_of(neg_len)
    order = np.argsort([n.id for n in negatives], kind="stable")  # input-order independent draws
    picked: list[int] = []
    needed, got = [], []
    for b in range(len(edges) - 1):
        need = int(round(ratio * int((pb == b).sum())))
        avail = order[nb[order] == b]
        take = min(need, len(avail))
        if take:
            picked.extend(rng.choice(avail, size=take, replace=False).tolist())
        needed.append(need)
        got.append(take)
    out = sorted((negatives[i] for i in picked), key=lambda it: it.id)
    rep = LengthMatchReport(tuple(float(e) for e in edges), tuple(needed), tuple(got))
    return (out, rep) if with_report else out


def _sklearn():
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer, StandardScaler
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("shortcut_baselines needs scikit-learn: pip install scikit-learn "
                          "(or pip install 'monitor_jax[test]')") from e
    return TfidfVectorizer, LogisticRegression, roc_auc_score, make_pipeline, FunctionTransformer, StandardScaler


def length_features(texts: Sequence[str]) -> np.ndarray:
    """[log1p(n_chars), log1p(n_words)] per text: the only inputs of the length-only baseline."""
    return np.log1p(np.array([[len(t), len(t.split())] for t in texts], dtype=float).reshape(-1, 2))


def shortcut_baselines(train_texts: Sequence[str], train_labels: Sequence[int],
                       eval_texts: Sequence[str], eval_labels: Sequence[int]) -> dict[str, float]:
    """Eval AUROCs of two surface-feature classifiers fit on the train split:
    length-only (`length_features` → StandardScaler → LogisticRegression) and TF-IDF (word 1–2 grams,
    sublinear tf) → LogisticRegression. Both are nan when train or eval lacks a class. A task where
    tfidf_auroc ≈ 1 measures nothing about monitors: fix it or flag it."""
    TfidfVectorizer, LogisticRegression, roc_auc_score, make_pipeline, _, StandardScaler = _sklearn()
    ytr = np.asarray(train_labels).astype(int)
    yev = np.asarray(eval_labels).astype(int)
    if len(ytr) != len(train_texts) or len(yev) != len(eval_texts):
        raise ValueError("texts and labels differ in length")
    nan = {"length_auroc": float("nan"), "tfidf_auroc": float("nan")}
    if len(np.unique(ytr)) < 2 or len(np.unique(yev)) < 2:
        return nan
    length = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    length.fit(length_features(train_texts), ytr)
    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          LogisticRegression(max_iter=1000))
    tfidf.fit(list(train_texts), ytr)
    return {"length_auroc": float(roc_auc_score(yev, length.predict_proba(length_features(eval_texts))[:, 1])),
            "tfidf_auroc": float(roc_auc_score(yev, tfidf.predict_proba(list(eval_texts))[:, 1]))}


def label_counts(items: Iterable[T], key: Callable[[T], Hashable]) -> dict:
    """{label: count} sorted by label (a small reporting helper)."""
    c = collections.Counter(key(it) for it in items)
    return dict(sorted(c.items(), key=lambda kv: str(kv[0])))

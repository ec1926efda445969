"""The evaluation protocol's statistics and verdicts without a model: the two-level CI covers under seed variance
where an items-only CI does not, groups are resampled whole, a failed precondition gives "not testable", every
claim config's claimed directions match DESIGN.md §1 (a table written here, not read from the configs), per-item
scores round-trip into the same statistics, and experiments/verdict.py runs clean on the committed results."""
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from monitor_jax.core import config as config_lib
from monitor_jax.eval import metrics, two_level
from monitor_jax.experiment import compare, decide, item_scores, preconditions

ROOT = pathlib.Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- two-level bootstrap


def _true_auroc(mu: float, tau: float, sigma: float) -> float:
    """E_u Phi((mu + u) / (sqrt(2) sigma)), u ~ N(0, tau^2): the seed-averaged population AUROC of the model below."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    phi = np.array([0.5 * (1 + math.erf((mu + tau * v) / (2 * sigma))) for v in x])
    return float((w * phi).sum() / w.sum())


def test_two_level_ci_covers_with_seed_variance_and_items_only_under_covers():
    # score = item difficulty (shared by seeds) + label x (separation mu + seed effect u_s) + run noise
    k, n_pos, mu, tau, sd_item, sd_run = 5, 60, 1.0, 0.5, 1.0, 0.5
    truth = _true_auroc(mu, tau, math.hypot(sd_item, sd_run))
    y = np.r_[np.ones(n_pos), np.zeros(n_pos)].astype(int)
    rng = np.random.default_rng(123)
    hits = {True: 0, False: 0}
    reps = 200
    for r in range(reps):
        u, d = rng.normal(0, tau, k), rng.normal(0, sd_item, y.size)
        runs = [d + y * (mu + u[s]) + rng.normal(0, sd_run, y.size) for s in range(k)]
        for seed_level in (True, False):
            est, draws = two_level.seed_mean_draws(metrics.auroc, {"a": runs}, y, 300, r, seed_level=seed_level)
            ci = metrics.percentile_ci(est["a"], draws["a"])
            hits[seed_level] += ci.low <= truth <= ci.high
    two, items = hits[True] / reps, hits[False] / reps
    print(f"coverage of the 95 % CI over {reps} replicates: two-level {two:.3f}, items only {items:.3f}")
    assert 0.90 <= two <= 0.99
    assert items < 0.90 and items < two - 0.04


def test_two_level_pairs_arms_and_reduces_to_items_with_one_seed():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(30), np.zeros(40)].astype(int)
    a, b = rng.normal(size=70) + y, rng.normal(size=70) + 0.5 * y
    est, draws = two_level.seed_mean_draws(metrics.auroc, {"a": [a], "b": [b]}, y, 200, 4)
    np.testing.assert_array_equal(np.stack([draws["a"], draws["b"]]),
                                  metrics.bootstrap_distribution(metrics.auroc, [a, b], y, 200, 4))
    # two arms of k seeds share the seed draw: identical runs give identical draws, so their difference is 0
    runs = [rng.normal(size=70) + s * y for s in (0.3, 0.8, 1.2)]
    _, draws = two_level.seed_mean_draws(metrics.auroc, {"x": runs, "y": list(runs)}, y, 200, 1)
    np.testing.assert_array_equal(draws["x"], draws["y"])
    assert est["a"] == pytest.approx(metrics.auroc(a, y))


def test_groups_are_resampled_whole():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(25), np.zeros(35)].astype(int)
    s = rng.normal(size=60) + y
    plain = metrics.bootstrap_distribution(metrics.auroc, [s], y, 300, 9)
    own = metrics.bootstrap_distribution(metrics.auroc, [s], y, 300, 9, groups=[f"g{i}" for i in range(60)])
    np.testing.assert_array_equal(plain, own)
    # every item twice, each pair one group: the same resamples of pairs, so the same AUROCs
    twice = metrics.bootstrap_distribution(metrics.auroc, [np.repeat(s, 2)], np.repeat(y, 2), 300, 9,
                                           groups=np.repeat(np.arange(60), 2))
    np.testing.assert_allclose(twice, plain, atol=1e-12)
    # mixed-label groups are a stratum of their own; every resample still has both classes
    mixed = metrics.bootstrap_distribution(metrics.auroc, [s], y, 300, 9, groups=np.arange(60) % 20)
    assert np.isfinite(mixed).all() and not np.allclose(mixed, plain)


def test_wilson_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    ci = metrics.proportion_ci(41, 96)
    want = stats.binomtest(41, 96).proportion_ci(method="wilson")
    assert ci.estimate == pytest.approx(41 / 96)
    assert (ci.low, ci.high) == pytest.approx((want.low, want.high), abs=1e-12)


# ---------------------------------------------------------------- verdicts


def _cells(rng, y, **arms):
    """Per-cell statistics of synthetic arms (name -> (separation, n seeds)) on one cell "c"."""
    scores = {a: [rng.normal(size=y.size) + sep * y for _ in range(k)] for a, (sep, k) in arms.items()}
    stats, est, dists = decide.cell_stats({"c": scores}, {"c": y}, {}, 300)
    return {"c": {"arms": stats["c"], "generation": None}}, est, dists


def test_a_failed_precondition_gives_not_testable_never_refuted():
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(60), np.zeros(60)].astype(int)
    cells, est, dists = _cells(rng, y, base=(0.0, 1), trained=(-1.5, 3), in_domain=(0.05, 3))
    spec = {"kind": "diff", "cell": "c", "a": "base", "b": "trained", "direction": 1, "primary": True}
    gap = {"kind": "diff", "what": "in-domain gap", "cell": "c", "a": "base", "b": "in_domain", "direction": 1,
           "guards": ("c",)}
    judge = {"kind": "auroc_at_least", "what": "judge works", "cell": "c", "arm": "base", "threshold": 0.7,
             "guards": ()}
    cmp, rec, verdict = decide.verdicts(None, [spec], [], cells, est, dists, None)
    assert cmp[0]["verdict"] == "refuted" and verdict == "refuted"  # without the precondition: refuted
    for pre in (gap, judge):
        cmp, rec, verdict = decide.verdicts(None, [spec], [pre], cells, est, dists, None)
        assert rec[0]["passed"] is False and preconditions.passes(rec[0]) is False
        assert cmp[0]["verdict"] == verdict == "not testable" and cmp[0]["blocked_by"] == [pre["what"]]
        assert cmp[0]["ci"]["high"] < 0  # the CI is kept
    # an unevaluated precondition (an arm the budget skipped) blocks too; a passing one does not
    cmp, rec, _ = decide.verdicts(None, [spec], [{**gap, "b": "skipped"}], cells, est, dists, None)
    assert rec[0]["passed"] is None and cmp[0]["verdict"] == "not testable"
    cmp, rec, verdict = decide.verdicts(None, [spec], [{**judge, "threshold": 0.3}], cells, est, dists, None)
    assert rec[0]["passed"] is True and verdict == "refuted"
    # the claim: decided over the testable primaries; not testable only when none is
    v = lambda *vs: compare.claim_verdict([{"verdict": s, "primary": True} for s in vs])  # noqa: E731
    assert v("not testable", "not testable") == "not testable" and v("not testable", "reproduced") == "reproduced"
    assert v("not testable", "refuted", "reproduced") == "inconclusive"
    assert compare.untestable_primaries([{"verdict": "not testable", "primary": True}, {"verdict": "refuted"}]) \
        == (1, 1)


def test_stored_precondition_records_are_re_decided_from_their_numbers():
    ci = {"estimate": 0.045, "low": -0.065, "high": 0.170}
    assert preconditions.passes({"kind": "diff", "ci": ci, "direction": 1}) is False
    assert preconditions.passes({"kind": "diff", "ci": {**ci, "low": 0.01}, "direction": 1}) is True
    assert preconditions.passes({"kind": "label_agreement", "threshold": 0.5,
                                 "ci": metrics.proportion_ci(41, 96)._asdict()}) is False
    assert preconditions.passes({"kind": "generation_ratio", "threshold": 0.5, "value": 1.8 / 41.5}) is False
    assert preconditions.passes({"kind": "exposure_ratio", "threshold": 1.5, "value": 17.0}) is False
    assert preconditions.passes({"kind": "auroc_at_least", "threshold": 0.7, "value": None}) is None


def test_a_committed_precondition_is_read_from_another_experiments_results(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(preconditions, "ROOT", tmp_path)
    diff = {"kind": "diff", "cell": "a:primary", "a": "base", "b": "in_a", "direction": 1,
            "ci": {"estimate": 0.12, "low": 0.03, "high": 0.2}}
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text(json.dumps({"split": "test", "seeds": [0, 1, 2],
                                                             "comparisons": [diff]}))
    spec = {"kind": "committed", "what": "gap", "result": "r/results.json", "cell": "a:primary", "a": "base",
            "b": "in_a", "direction": 1, "guards": ("c",)}
    claim = {"kind": "diff", "cell": "c", "a": "base", "b": "trained", "direction": 1, "primary": True}
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(60), np.zeros(60)].astype(int)
    cells, est, dists = _cells(rng, y, base=(0.0, 1), trained=(-1.5, 3), in_domain=(0.05, 3))
    cmp, (rec,), verdict = decide.verdicts(None, [claim], [spec], cells, est, dists, None)
    assert rec["passed"] is True and rec["split"] == "test" and rec["value"] == 0.12 and verdict == "refuted"
    (tmp_path / "r" / "results.json").write_text(json.dumps(
        {"split": "test", "comparisons": [{**diff, "ci": {"estimate": 0.1, "low": -0.01, "high": 0.2}}]}))
    cmp, (rec,), verdict = decide.verdicts(None, [claim], [spec], cells, est, dists, None)
    assert rec["passed"] is False and verdict == "not testable" and cmp[0]["blocked_by"] == ["gap"]
    (stored,) = preconditions.evaluate(None, [rec], {}, {}, {})  # recomputing reads the committed file again
    assert stored["ci"] == rec["ci"] and stored["passed"] is False
    (missing,) = preconditions.evaluate(object(), [{**spec, "b": "other"}], {}, {}, {})
    assert missing["passed"] is None and "has no diff" in missing["note"]
    (absent,) = preconditions.evaluate(object(), [{**spec, "result": "none/results.json"}], {}, {}, {})
    assert absent["passed"] is None and "not committed" in absent["note"]


# ---------------------------------------------------------------- claimed directions, from DESIGN.md §1

AGENT, INFO, HARM = "agent/sabotage:primary", "requests/info_hazard:primary", "requests/harmful:primary"
AGENTDOJO, MISINFO = "agentdojo/unrequested:primary", "requests/misinfo:primary"
PROBE = "news/entertainment:primary"
# (claim, cell, kind, roles in order a/b/arm/other/base/ref) -> the sign the claim's statement gives
EXPECTED = {
    # C1: training on other tasks improves unseen tasks, over the untrained model and over its shuffled-label
    # control (format learning is not transfer); the in-domain gaps that guard the agent cells exist
    **{("C1", k, "diff", a, "mixture"): +1 for k in (AGENTDOJO, AGENT, INFO, MISINFO)
       for a in ("base", "mixture_shuffled")},
    ("C1", AGENTDOJO, "committed", "base", "in_agentdojo+two_way+lr3e-3"): +1,
    ("C1", AGENT, "committed", "base", "in_agent+two_way+lr3e-3"): +1,
    # C2: the more adjacent the domain, the more of the gap is recovered (every gap itself > 0; every transfer
    # arm beats the untrained model and its shuffled-label control); on AgentDojo, whose in-domain reference is
    # committed, near - far has the sign of their gap difference
    ("C2", AGENTDOJO, "diff", "far", "near"): +1,
    ("C2", INFO, "gap_diff", "near", "far", "base", "in_info"): +1,
    **{("C2", INFO, "gap", a, "base", "in_info"): +1 for a in ("far", "near", "closest", "chembio")},
    **{("C2", k, "diff", f"{a}_shuffled", a): +1 for k in (AGENTDOJO, INFO) for a in ("near", "far")},
    **{("C2", AGENTDOJO, "diff", "base", a): +1 for a in ("near", "far", "closest", "chembio")},
    ("C2", AGENTDOJO, "committed", "base", "in_agentdojo+two_way+lr3e-3"): +1,
    ("C2", INFO, "diff", "base", "in_info"): +1,
    # C3: beside a fixed small in-domain set, more adjacent data helps (over the in-domain set alone, at the same
    # budget and at the same in-domain exposure; over the adjacent data with shuffled labels); the in-domain gap
    **{("C3", AGENTDOJO, "diff", a, b): +1 for a in ("small", "small_half")
       for b in ("cyber82", "gen384")},
    **{("C3", AGENTDOJO, "diff", "small", b): +1 for b in ("cyber16", "cyber32", "gen64", "gen192")},
    **{("C3", AGENTDOJO, "diff", f"{b}_shuffled", b): +1 for b in ("cyber82", "gen384")},
    ("C3", AGENTDOJO, "diff", "base", "small"): +1,
    ("C3", AGENTDOJO, "committed", "base", "in_agentdojo+two_way+lr3e-3"): +1,
    # C4: a new question on the trained domain is answered worse than untrained, as if it were the old question
    **{("C4", PROBE, "diff", a, "sport"): -1 for a in ("base", "tweets", "unreq")},
    **{("C4", "agentdojo/requested:primary", "diff", a, "unreq"): -1 for a in ("base", "tweets", "sport")},
    ("C4", "news/entertainment:asked-sport", "diff", "base", "sport"): +1,
    ("C4", "news/sports:inverted", "diff", "base", "sport"): -1,
    ("C4", "news/sports:primary", "diff", "base", "sport"): +1,
    ("C4", AGENTDOJO, "committed", "base", "in_agentdojo+two_way+lr3e-3"): +1,
    # C5: good IF mixing mends C4 (the failure exists: base -> sport < 0) and keeps the in-domain gain; done badly
    # it does not
    **{("C5", PROBE, "diff", "sport", a): +1 for a in ("if_mix", "if_later")},
    **{("C5", PROBE, "diff", "sport", a): -1 for a in ("if_diluted", "if_little")},
    ("C5", PROBE, "diff", "base", "sport"): -1,
    **{("C5", "news/sports:primary", "diff", "base", a): +1 for a in ("sport", "if_mix", "if_later")},
    # C6: no-thinking training also improves with-thinking classification (and no-thinking, and the control)
    **{("C6", f"{t}:{v}", "diff", "base", a): +1 for t in ("requests/harmful", "requests/info_hazard")
       for v in ("thinking", "primary", "control") for a in ("mixture_if", "mixture")},
    # C7: trained summaries let the judge detect better; a summary beats the same-length first tokens and is
    # below the full input (the upper reference)
    **{("C7", f"{t}:summary", "diff", *roles): sign for t in ("agentdojo/unrequested", "requests/harmful")
       for roles, sign in ((("base", "mixture_if"), +1), (("base:first_n", "base"), +1),
                           (("mixture_if:first_n", "mixture_if"), +1), (("full_input", "mixture_if"), -1))},
    # C8: pseudo-labels improve over untrained; gold labels on the same items are the upper reference
    ("C8", HARM, "diff", "base", "pseudo"): +1,
    ("C8", HARM, "diff", "pseudo", "gold"): +1,
    ("C8", HARM, "diff", "base", "gold"): +1,
    ("C8", HARM, "gap", "pseudo", "base", "gold"): +1,
    ("C8", HARM, "diff", "mixture_if", "pseudo"): +1,
    ("C8", "requests/harmful:thinking", "diff", "base", "mixture_if"): +1,
}
ROLES = ("a", "b", "arm", "other", "base", "ref")


CLAIM_CONFIGS = sorted((ROOT / "configs").glob("c*.py"))


def test_every_claim_config_is_covered():
    claims = sorted(config_lib.load(p).experiment.claim for p in CLAIM_CONFIGS)
    assert claims == [f"C{i}" for i in range(1, 9)]


@pytest.mark.parametrize("path", CLAIM_CONFIGS, ids=lambda p: p.stem)
def test_claimed_directions_follow_the_design(path):
    e = config_lib.load(path).experiment
    signed = list(e.comparisons) + [p for p in e.preconditions if p.kind in ("diff", "committed")]
    got = {(e.claim, c.cell, c.kind, *(c[r] for r in ROLES if c.get(r))): int(c.direction) for c in signed}
    want = {k: v for k, v in EXPECTED.items() if k[0] == e.claim}
    wrong = {k: (got[k], want[k]) for k in got.keys() & want.keys() if got[k] != want[k]}
    assert not wrong, f"{path.name}: claimed direction (config, DESIGN §1) differs: {wrong}"
    assert got.keys() == want.keys(), (f"{path.name}: comparisons without an expected sign here: "
                                       f"{sorted(got.keys() - want.keys())}; expected but missing: "
                                       f"{sorted(want.keys() - got.keys())}")


# ---------------------------------------------------------------- per-item scores and the verdict script


def test_item_scores_round_trip_into_the_same_statistics(tmp_path):
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(20), np.zeros(30)].astype(int)
    ids = [f"i{j}" for j in range(50)]
    raw = {"scores": {"c": {"base": [rng.normal(size=50)], "t": [rng.normal(size=50) + y for _ in range(3)]}},
           "labels": {"c": y}, "ids": {"c": ids}, "groups": {"c": [f"g{j // 2}" for j in range(50)]},
           "seeds": {"base": [None], "t": [0, 1, 2]}}
    rows = item_scores.rows(raw, {"c": {}})
    assert len(rows) == 4 * 50 and set(rows[0]) == {"cell", "item", "group", "label", "arm", "seed", "score"}
    item_scores.write(tmp_path / "s.jsonl.gz", rows)
    first = (tmp_path / "s.jsonl.gz").read_bytes()
    item_scores.write(tmp_path / "s.jsonl.gz", rows)
    assert (tmp_path / "s.jsonl.gz").read_bytes() == first  # byte-stable
    back = item_scores.rebuild(item_scores.read(tmp_path / "s.jsonl.gz"))["c"]
    assert back["ids"] == ids and back["seeds"] == {"base": [None], "t": [0, 1, 2]}
    want = decide.cell_stats(raw["scores"], raw["labels"], raw["groups"], 200)
    got = decide.cell_stats({"c": back["scores"]}, {"c": back["labels"]}, {"c": back["groups"]}, 200)
    assert got[0] == want[0]


def test_verdict_script_runs_clean_and_its_tables_are_current():
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "verdict.py"), "--check"], cwd=ROOT,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stdout + out.stderr


def test_config_preconditions_c3_exposure_and_c8_label_agreement(monkeypatch):
    config = config_lib.load("c3_scaling")
    spec = config.experiment.preconditions[1].to_dict()
    (rec,) = preconditions.evaluate(config, [spec], {}, {}, {})
    half = config.experiment.budget_rows / 2  # the mixed arms: half their row-visits in-domain, as small_half
    assert rec["rows"]["gen384"] == pytest.approx(half) and rec["rows"]["small_half"] == pytest.approx(half, abs=8)
    assert rec["value"] == pytest.approx(1.0, abs=0.03) and rec["passed"] is True  # whole steps of 8 rows
    wide = {**spec, "arms": ("small", *spec["arms"])}  # the in-domain-only arm at the full budget sees them 2x
    (rec,) = preconditions.evaluate(config, [wide], {}, {}, {})
    assert rec["value"] == pytest.approx(2.0) and rec["passed"] is False
    config = config_lib.load("c8_elicitation")
    spec = config.experiment.preconditions[0].to_dict()
    gold = {f"i{j}": j % 2 for j in range(96)}
    pseudo = {i: (1 - y if j < 55 else y) for j, (i, y) in enumerate(gold.items())}  # 41 of 96 agree

    def examples(name, split):  # ids as the registry makes them: "<task>:<source>:<item>"
        labels = pseudo if name == spec["task"] else gold
        return [type("E", (), {"id": f"{name}:src:{i}", "label": y})() for i, y in labels.items()] \
            if split == "train" else []

    monkeypatch.setattr(preconditions.tasks, "examples", examples)
    (rec,) = preconditions.evaluate(config, [spec], {}, {}, {})
    assert rec["n"] == 96 and rec["value"] == pytest.approx(41 / 96) and rec["passed"] is False

"""Record statistics (harness/stats.py) against hand-worked cases and published numbers.

Hand computations use the closed forms of Student's t CDF for small df:
df=1 (Cauchy): F(t) = 1/2 + atan(t)/pi;   df=2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness import stats
from harness.errors import PgolfError
from harness.rules import RULES


def t_cdf_df1(t: float) -> float:
    return 0.5 + math.atan(t) / math.pi


def t_cdf_df2(t: float) -> float:
    return 0.5 + t / (2 * math.sqrt(2 + t * t))


def test_mean_std_se_by_hand() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert stats.mean(xs) == 2.5
    # squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n-1 = 3
    assert stats.sample_std(xs) == pytest.approx(math.sqrt(5 / 3), rel=1e-15)
    assert stats.standard_error(xs) == pytest.approx(math.sqrt(5 / 3) / 2, rel=1e-15)


def test_single_value_has_no_spread() -> None:
    assert stats.sample_std([2.0]) is None
    assert stats.standard_error([2.0]) is None
    rt = stats.record_test([2.0], baseline_loss=3.0)
    assert rt.p_value is None and rt.t_statistic is None and not rt.significant
    assert rt.seeds_needed is None


def test_empty_and_non_finite_are_refused() -> None:
    with pytest.raises(PgolfError, match="at least one"):
        stats.mean([])
    with pytest.raises(PgolfError, match="finite"):
        stats.sample_std([1.0, float("nan")])


def test_three_seeds_std_0002_margin_004_is_highly_significant() -> None:
    # mean 2.002, sample std exactly 0.002; baseline 0.04 nats worse than the mean.
    losses = [2.000, 2.002, 2.004]
    baseline = 2.042
    rt = stats.record_test(losses, baseline)
    assert rt.std == pytest.approx(0.002, rel=1e-9)
    assert rt.threshold == pytest.approx(baseline - RULES.record_margin_nats)
    # by hand: t = (2.002 - 2.037) / (0.002 / sqrt 3) = -30.31; df 2
    t_hand = (2.002 - (baseline - RULES.record_margin_nats)) / (0.002 / math.sqrt(3))
    assert rt.t_statistic == pytest.approx(t_hand, rel=1e-9)
    assert rt.df == 2
    assert rt.p_value == pytest.approx(t_cdf_df2(t_hand), rel=1e-9)
    assert rt.p_value < RULES.significance_p / 10  # p << 0.01 (about 5.4e-4)
    assert rt.significant


def test_beating_baseline_by_less_than_the_margin_is_not_significant() -> None:
    # mean is 0.004 nats better than the baseline: below the 0.005 margin, so p > 0.5.
    losses = [2.000, 2.001, 2.002]
    rt = stats.record_test(losses, baseline_loss=2.005)
    assert rt.t_statistic is not None and rt.t_statistic > 0
    assert rt.p_value is not None and rt.p_value > 0.5
    assert not rt.significant
    assert rt.seeds_needed is None  # no number of seeds makes this a record


def test_two_seeds_match_the_cauchy_cdf() -> None:
    losses = [1.90, 1.92]  # mean 1.91; sample std of two values = |a - b| / sqrt 2
    baseline = 1.95
    s = abs(losses[0] - losses[1]) / math.sqrt(2)
    t_hand = (1.91 - (baseline - RULES.record_margin_nats)) / (s / math.sqrt(2))
    rt = stats.record_test(losses, baseline)
    assert rt.t_statistic == pytest.approx(t_hand, rel=1e-9)
    assert rt.p_value == pytest.approx(t_cdf_df1(t_hand), rel=1e-9)


def test_seeds_needed_by_hand() -> None:
    # gap / std = 10. n=2 (df 1): t = -10 sqrt 2 = -14.14, p = 0.0225 >= 0.01.
    # n=3 (df 2): t = -10 sqrt 3 = -17.32, p = 0.0017 < 0.01. So 3 seeds.
    assert t_cdf_df1(-10 * math.sqrt(2)) > 0.01
    assert t_cdf_df2(-10 * math.sqrt(3)) < 0.01
    assert stats.seeds_needed(observed_mean=1.0, observed_std=0.001, threshold=1.01) == 3
    # A huge effect needs only the minimum of two seeds; zero spread too.
    assert stats.seeds_needed(1.0, 0.0001, 1.1) == 2
    assert stats.seeds_needed(1.0, 0.0, 1.001) == 2
    # Not beating the threshold: never.
    assert stats.seeds_needed(1.0, 0.001, 1.0) is None


def test_zero_spread_is_decided_by_the_mean() -> None:
    assert stats.record_test([2.0, 2.0, 2.0], baseline_loss=2.1).p_value == 0.0
    assert stats.record_test([2.0, 2.0, 2.0], baseline_loss=2.001).p_value == 1.0


def test_published_three_seed_record_is_significant() -> None:
    # The accepted 1.0611 record (2026-04-27): per-seed val_loss/val_bpb, baseline 1.0810 bpb.
    losses = [2.31944212, 2.32239991, 2.32423994]
    bpbs = [1.05989454, 1.06124613, 1.06208695]
    out = stats.full_statistics(losses, bpbs, baseline_bpb=1.0810)
    assert out["val_loss_mean"] == pytest.approx(2.32202732, abs=1e-8)
    assert out["val_bpb_mean"] == pytest.approx(1.06107587, abs=1e-8)
    # The record quotes 0.04359 nats better than 1.0810 bpb: our bpb->nats conversion agrees.
    assert out["baseline_loss"] - out["val_loss_mean"] == pytest.approx(0.04359, abs=2e-5)
    assert out["baseline_loss_source"] == "derived_from_bpb"
    # Its 0.00198 is the population std (ddof=0); the sample std is sqrt(3/2) larger.
    assert out["val_loss_std"] * math.sqrt(2 / 3) == pytest.approx(0.00198, abs=1e-5)
    assert out["p_value"] < 1e-3
    assert out["significant"] is True
    # gap to the threshold 0.0386 nats, std 0.00242: 2 seeds give t = -22.5 (df 1, p 0.014),
    # not enough; 3 seeds suffice.
    assert out["seeds_needed"] == 3


def test_full_statistics_without_baseline_has_no_test() -> None:
    out = stats.full_statistics([2.0, 2.1], [1.0, 1.05])
    assert out["p_value"] is None and out["significant"] is False
    assert out["baseline_loss"] is None and out["baseline_bpb"] is None
    assert out["margin_nats"] == RULES.record_margin_nats and out["alpha"] == RULES.significance_p


def test_baseline_loss_given_derives_bpb() -> None:
    out = stats.full_statistics([2.0, 2.2], [1.0, 1.1], baseline_loss=2.5)
    assert out["baseline_loss_source"] == "given"
    assert out["baseline_bpb"] == pytest.approx(2.5 / 2.0)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(PgolfError, match="one per seed"):
        stats.full_statistics([2.0, 2.1], [1.0])


finite = st.floats(min_value=1.0, max_value=4.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=3, max_size=3, unique=True), st.floats(min_value=-0.2, max_value=0.2))
def test_p_value_matches_closed_form_df2(losses: list[float], offset: float) -> None:
    baseline = stats.mean(losses) + offset
    rt = stats.record_test(losses, baseline)
    s = stats.sample_std(losses)
    assert s is not None
    assume(s > 1e-6)  # nearly equal values: both sides lose all digits to cancellation
    t_hand = (stats.mean(losses) - (baseline - RULES.record_margin_nats)) / (s / math.sqrt(3))
    assert rt.p_value == pytest.approx(t_cdf_df2(t_hand), rel=1e-6, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=1e-4, max_value=0.05), st.floats(min_value=1e-4, max_value=0.01))
def test_seeds_needed_is_the_smallest_sufficient_n(gap: float, std: float) -> None:
    n = stats.seeds_needed(observed_mean=2.0, observed_std=std, threshold=2.0 + gap)
    if n is None:
        return
    p_at = stats.one_sided_p(-gap / (std / math.sqrt(n)), n - 1)
    assert p_at < RULES.significance_p
    if n > 2:
        p_before = stats.one_sided_p(-gap / (std / math.sqrt(n - 1)), n - 2)
        assert p_before >= RULES.significance_p


def test_stats_of_the_challenges_folders_use_the_per_seed_values_of_their_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from records_sample import unpack

    from harness.cli import main as cli_main

    records = unpack(tmp_path)
    folders = sorted(p for p in records.glob("track_*/*") if p.is_dir())
    assert len(folders) == 30
    for folder in folders:
        assert cli_main(["stats", str(folder), "--json"]) == 0, folder.name
        capsys.readouterr()
    # Per-seed val_loss is only in the logs here (submission.json gives val_bpb alone).
    assert (
        cli_main(
            [
                "stats",
                str(records / "track_10min_16mb/2026-04-04_SP4096_DepthRecurrence_ParallelResid_MuonEqR"),
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["seeds"] == [42, 314, 999]
    assert doc["val_loss"] == [2.50671564, 2.50771838, 2.50796723]
    assert doc["val_bpb"][0] == 1.08938974  # the reported pass, not seed 42's failed TTT pass

"""Statistics of a multi-seed result: mean, spread, and the record significance test.

A new record must beat the current best by at least ``RULES.record_margin_nats``
with ``p < RULES.significance_p``. The test here is the usual one-sided,
one-sample t-test over the per-seed val_loss (nats):

    H0: mean val_loss >= baseline_loss - margin     H1: mean val_loss < baseline_loss - margin

Pure functions over sequences of floats; nothing here reads files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.errors import PgolfError
from harness.rules import RULES

TEST_NAME = "one-sided one-sample t-test (scipy.stats.ttest_1samp, alternative='less')"

# Searching further than this for "seeds needed" is pointless: no one runs that many.
MAX_SEEDS_SEARCHED = 10_000


def _values(xs: Sequence[float], what: str = "values") -> list[float]:
    vals = [float(x) for x in xs]
    if not vals:
        raise PgolfError(f"{what}: expected at least one value, got none")
    for v in vals:
        if not math.isfinite(v):
            raise PgolfError(f"{what}: expected finite numbers, got {v!r}")
    return vals


def mean(xs: Sequence[float]) -> float:
    vals = _values(xs)
    return math.fsum(vals) / len(vals)


def sample_std(xs: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof=1); None for a single value (undefined)."""
    vals = _values(xs)
    if len(vals) < 2:
        return None
    m = mean(vals)
    return math.sqrt(math.fsum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def standard_error(xs: Sequence[float]) -> float | None:
    """Standard error of the mean, s / sqrt(n); None for a single value."""
    s = sample_std(xs)
    return None if s is None else s / math.sqrt(len(xs))


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float | None
    se: float | None


def summarize(xs: Sequence[float]) -> Summary:
    return Summary(n=len(_values(xs)), mean=mean(xs), std=sample_std(xs), se=standard_error(xs))


def one_sided_p(t_statistic: float, df: int) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom: the 'less' tail."""
    # Imported lazily: scipy costs ~0.5 s and every `pgolf` command imports this module.
    from scipy import stats as sps

    return float(sps.t.cdf(t_statistic, df))


def seeds_needed(
    observed_mean: float,
    observed_std: float | None,
    threshold: float,
    alpha: float = RULES.significance_p,
    max_n: int = MAX_SEEDS_SEARCHED,
) -> int | None:
    """Smallest number of seeds at which a run with this mean and spread would give p < alpha.

    Assumes later seeds keep the observed mean and sample std (the usual planning
    estimate). None when the mean does not beat ``threshold`` (no number of seeds
    helps), when the spread is unknown (one seed), or when more than ``max_n``
    would be needed.
    """
    if observed_std is None or observed_mean >= threshold:
        return None
    if observed_std == 0.0:
        return 2  # the t-test needs two values; with no spread any n >= 2 is decisive
    gap = threshold - observed_mean
    for n in range(2, max_n + 1):
        t = -gap / (observed_std / math.sqrt(n))
        if one_sided_p(t, n - 1) < alpha:
            return n
    return None


@dataclass(frozen=True)
class RecordTest:
    """Outcome of the record significance test over per-seed val_loss values."""

    n: int
    mean: float
    std: float | None
    se: float | None
    baseline_loss: float
    margin_nats: float
    threshold: float  # baseline_loss - margin_nats: the mean must be below this
    alpha: float
    t_statistic: float | None
    df: int | None
    p_value: float | None
    significant: bool
    seeds_needed: int | None
    test: str = TEST_NAME

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_test(
    val_losses: Sequence[float],
    baseline_loss: float,
    margin_nats: float = RULES.record_margin_nats,
    alpha: float = RULES.significance_p,
) -> RecordTest:
    """One-sided t-test that mean val_loss < baseline_loss - margin_nats.

    With one seed there is no spread: t, df and p are None and the claim is not
    significant. With identical values (std 0) t is infinite: p is 0 when the
    mean is below the threshold and 1 otherwise (JSON cannot hold infinities, so t is None).
    """
    vals = _values(val_losses, "val_loss")
    if not math.isfinite(baseline_loss):
        raise PgolfError(f"baseline val_loss: expected a finite number, got {baseline_loss!r}")
    summary = summarize(vals)
    threshold = baseline_loss - margin_nats
    t_stat: float | None = None
    df: int | None = None
    p: float | None = None
    if summary.n >= 2 and summary.std is not None:
        df = summary.n - 1
        if summary.std == 0.0:
            p = 0.0 if summary.mean < threshold else 1.0
        else:
            from scipy import stats as sps

            res = sps.ttest_1samp(vals, popmean=threshold, alternative="less")
            t_stat = float(res.statistic)
            p = float(res.pvalue)
    return RecordTest(
        n=summary.n,
        mean=summary.mean,
        std=summary.std,
        se=summary.se,
        baseline_loss=baseline_loss,
        margin_nats=margin_nats,
        threshold=threshold,
        alpha=alpha,
        t_statistic=t_stat,
        df=df,
        p_value=p,
        significant=p is not None and p < alpha,
        seeds_needed=seeds_needed(summary.mean, summary.std, threshold, alpha),
    )


def nats_per_bpb(val_losses: Sequence[float], val_bpbs: Sequence[float]) -> float:
    """Ratio val_loss / val_bpb of a run (= ln 2 x bytes per token of the val split).

    It is the same for every seed (same val split, same tokenizer), so a bpb
    difference converts to nats by multiplying with it.
    """
    bpb = mean(val_bpbs)
    if bpb <= 0:
        raise PgolfError(f"val_bpb: expected a positive mean, got {bpb!r}")
    return mean(val_losses) / bpb


@dataclass(frozen=True)
class Baseline:
    loss: float | None
    bpb: float | None
    loss_source: str | None  # "given" | "derived_from_bpb" | None


def resolve_baseline(
    val_losses: Sequence[float],
    val_bpbs: Sequence[float],
    baseline_bpb: float | None,
    baseline_loss: float | None,
) -> Baseline:
    """Fill in the baseline's missing unit from this run's nats-per-bpb ratio.

    The leaderboard quotes bpb; the rule is in nats. Given only one of them, the
    other follows from the ratio, which is a property of the val split.
    """
    if baseline_loss is not None:
        bpb = baseline_bpb
        if bpb is None:
            bpb = baseline_loss / nats_per_bpb(val_losses, val_bpbs)
        return Baseline(loss=baseline_loss, bpb=bpb, loss_source="given")
    if baseline_bpb is not None:
        return Baseline(
            loss=baseline_bpb * nats_per_bpb(val_losses, val_bpbs),
            bpb=baseline_bpb,
            loss_source="derived_from_bpb",
        )
    return Baseline(loss=None, bpb=None, loss_source=None)


def full_statistics(
    val_losses: Sequence[float],
    val_bpbs: Sequence[float],
    baseline_bpb: float | None = None,
    baseline_loss: float | None = None,
) -> dict[str, Any]:
    """The ``statistics`` object of submission.json (schema ``$defs/statistics``)."""
    losses = summarize(_values(val_losses, "val_loss"))
    bpbs = summarize(_values(val_bpbs, "val_bpb"))
    if losses.n != bpbs.n:
        raise PgolfError(f"val_loss has {losses.n} values but val_bpb has {bpbs.n}: expected one per seed")
    base = resolve_baseline(val_losses, val_bpbs, baseline_bpb, baseline_loss)
    out: dict[str, Any] = {
        "n": losses.n,
        "val_loss_mean": losses.mean,
        "val_loss_std": losses.std,
        "val_loss_se": losses.se,
        "val_bpb_mean": bpbs.mean,
        "val_bpb_std": bpbs.std,
        "val_bpb_se": bpbs.se,
        "baseline_loss": base.loss,
        "baseline_loss_source": base.loss_source,
        "baseline_bpb": base.bpb,
        "margin_nats": RULES.record_margin_nats,
        "alpha": RULES.significance_p,
        "t_statistic": None,
        "df": None,
        "p_value": None,
        "significant": False,
        "seeds_needed": None,
        "test": TEST_NAME,
    }
    if base.loss is not None:
        rt = record_test(val_losses, base.loss)
        out.update(
            t_statistic=rt.t_statistic,
            df=rt.df,
            p_value=rt.p_value,
            significant=rt.significant,
            seeds_needed=rt.seeds_needed,
        )
    return out


@dataclass(frozen=True)
class ComparisonTest:
    """Is this run's mean below another's (minus a margin)? One-sided; which test, and against what, is named."""

    test: str
    n: int
    mean: float
    reference_mean: float
    reference_n: int | None  # None: the reference is a single published score
    margin: float
    t_statistic: float | None
    p_value: float | None
    alpha: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_less(
    values: Sequence[float],
    reference: Sequence[float] | float,
    margin: float = 0.0,
    alpha: float = RULES.significance_p,
) -> ComparisonTest:
    """One-sided test that mean(values) < mean(reference) - margin.

    With a sample as reference: Welch's t-test (unequal variances, scipy.stats.ttest_ind);
    with one published score: the one-sample t-test against score - margin. Fewer than two
    values (or two reference values) give no p-value and no significance.
    """
    vals = _values(values)
    from scipy import stats as sps

    if isinstance(reference, (int, float)):
        ref_mean, ref_n, test = float(reference), None, "one-sample t-test (scipy.stats.ttest_1samp, 'less')"
        if len(vals) < 2:
            t, p = None, None
        elif sample_std(vals) == 0.0:
            t, p = None, 0.0 if mean(vals) < ref_mean - margin else 1.0
        else:
            res = sps.ttest_1samp(vals, popmean=ref_mean - margin, alternative="less")
            t, p = float(res.statistic), float(res.pvalue)
    else:
        ref = _values(reference, "reference")
        ref_mean, ref_n, test = (
            mean(ref),
            len(ref),
            "Welch's t-test (scipy.stats.ttest_ind, equal_var=False, 'less')",
        )
        if len(vals) < 2 or len(ref) < 2:
            t, p = None, None
        else:
            res = sps.ttest_ind(vals, [r - margin for r in ref], equal_var=False, alternative="less")
            t, p = float(res.statistic), float(res.pvalue)
            if not math.isfinite(p):
                t, p = None, 0.0 if mean(vals) < ref_mean - margin else 1.0
    return ComparisonTest(
        test=test,
        n=len(vals),
        mean=mean(vals),
        reference_mean=ref_mean,
        reference_n=ref_n,
        margin=margin,
        t_statistic=t,
        p_value=p,
        alpha=alpha,
        significant=p is not None and p < alpha,
    )

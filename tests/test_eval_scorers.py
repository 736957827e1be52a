"""The trainer's eval scorers (issue 20), on a tiny model and real proxy text, in process.

A scorer gets a rank's segments in stream order and returns one NLL per target; it must be causal
(tokens after a target never change its score, which is what the harness's replay audit checks),
return normalized log-prob rows that agree with its scores, and, when it adapts (score-first TTT),
learn from a segment only in committed(): the first segment is scored by the artifact's weights.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

TRAINER = Path(__file__).resolve().parents[1] / "submission_template" / "train_gpt.py"
CASEOPS_TOKENIZER = "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
_spec = importlib.util.spec_from_file_location("train_gpt_scorers", TRAINER)
assert _spec and _spec.loader
T = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(T)

BOS = 1
# tiny model, short windows so that windows, strides and documents all matter on a few k tokens
TINY = {
    "NUM_LAYERS": 2,
    "MODEL_DIM": 32,
    "NUM_HEADS": 2,
    "NUM_KV_HEADS": 1,
    "MLP_MULT": 2,
    "TRAIN_SEQ_LEN": 64,
    "EVAL_BATCH_TOKENS": 1024,
    "EVAL_SEGMENT_TOKENS": 200,
    "EVAL_STRIDE": 16,
    "TTT_CHUNK": 32,
    "TTT_LR": 0.01,
    "TTT_RANK": 4,
    "COMPILE": False,
    "NUM_THREADS": 1,
}  # fmt: skip  (1 thread: tiny ops on a busy machine)
MODES: dict[str, dict[str, Any]] = {
    "flat": {},
    "sliding": {},
    "doc": {},
    "ttt": {"TTT_RESET": "doc"},
    "ttt-carry": {"TTT_RESET": "never"},
    "ttt-carry-sliding": {"TTT_RESET": "never", "TTT_CONTEXT": "sliding"},
}


def _hp(mode: str = "flat", **extra: Any) -> Any:
    hp = T.Hyperparameters()
    for k, v in {**TINY, **MODES.get(mode, {}), **extra}.items():
        setattr(hp, k, v)
    hp.EVAL_MODE = mode.split("-")[0]
    return hp


@pytest.fixture(scope="module", autouse=True)
def _threads() -> Iterator[None]:
    """Runtime() sets torch's thread count for the process: give it back to later modules."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def tiny_model(rt: Any) -> Any:
    """A random tiny model: every matrix non-zero (the trainer zero-inits output projections)."""
    hp = _hp()
    torch.manual_seed(0)
    m = T.build_model(hp.model_config(), hp, rt)
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.1)
    return m


def proxy_stream(proxy_dir: Path) -> np.ndarray:
    """Real text as a short val stream: the first 20-150 tokens of each of the first 12 documents
    of the proxy val split (each opens with BOS), so segments hold several documents."""
    f = proxy_dir / "sp8192_caseops" / "fineweb_val_000000.bin"
    if not f.is_file():
        pytest.skip(f"{f} not found")
    toks = np.asarray(T.read_shard(str(f)), dtype=np.int64)
    starts = np.flatnonzero(toks == BOS)[:12]
    lengths = [20 + (37 * i) % 131 for i in range(len(starts))]
    return np.concatenate([toks[s : s + n] for s, n in zip(starts, lengths, strict=True)])


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_model(T.Runtime(_hp()))


@pytest.fixture(scope="module")
def rt() -> Any:
    return T.Runtime(_hp())


@pytest.fixture(scope="module")
def stream(proxy_dir: Path) -> np.ndarray:
    return proxy_stream(proxy_dir)


def _segments(tokens: np.ndarray, max_targets: int, context: int = 64) -> list[Any]:
    """One rank's segments as the harness serves them (LocalSegments mirrors it): whole documents
    up to max_targets, `context` tokens before each (the window the scorers ask for)."""
    source = T.LocalSegments(tokens, np.ones_like(tokens), 0, 1)
    return list(iter(lambda: source.next(max_targets, context), None))


def _seg(tokens: np.ndarray, lo: int, hi: int, context: int = 64) -> Any:
    """Targets [lo, hi) of `tokens` with up to `context` tokens before them."""
    c = min(context, lo)
    return T.Segment(tokens[lo - c : hi].astype(np.uint16), hi - lo, np.ones(hi - lo, np.uint16), 0, lo)


def _score_all(model: Any, rt: Any, hp: Any, segs: list[Any], commit: bool = True) -> list[np.ndarray]:
    scorer = T.make_scorer(model, hp, rt)
    out = []
    try:
        for s in segs:
            out.append(scorer.score(s))
            if commit:
                scorer.committed(s)
    finally:
        scorer.close()
    return out


def test_local_segments_cover_each_rank_range_once_in_whole_documents(stream: np.ndarray) -> None:
    starts = set(np.flatnonzero(stream == BOS).tolist())
    sources = [T.LocalSegments(stream, np.ones_like(stream), r, 3) for r in range(3)]
    ranges = [(s.pos, s.end) for s in sources]
    assert ranges[0][0] == 1 and ranges[-1][1] == len(stream)
    assert all(a[1] == b[0] and b[0] in starts for a, b in itertools.pairwise(ranges))
    for (lo, hi), source in zip(ranges, sources, strict=True):
        pos = lo
        while (seg := source.next(100, 30)) is not None:
            k = seg.context
            assert k == min(30, pos) and seg.n_targets <= 100 and seg.tokens.dtype == np.uint16
            assert seg.start == pos and np.array_equal(seg.tokens, stream[pos - k : pos + seg.n_targets])
            end = pos + seg.n_targets
            assert end == hi or end in starts or seg.n_targets == 100  # whole documents or a cut
            pos = end
        assert pos == hi


@pytest.mark.parametrize("world", [1, 3])
def test_flat_scorer_is_the_stream_in_chunks_from_its_start(
    world: int, model: Any, rt: Any, stream: np.ndarray
) -> None:
    """Flat is the whole stream cut in TRAIN_SEQ_LEN chunks from its start, whatever the segments
    (EVAL_SEGMENT_BATCHES=1: several segments) and however many ranks share it."""
    hp = _hp("flat", VAL_BATCH_TOKENS=128, EVAL_SEGMENT_BATCHES=1)
    L = hp.TRAIN_SEQ_LEN
    ref = []
    with torch.no_grad():
        for c in range(0, len(stream) - 1, L):
            x = torch.from_numpy(stream[c : c + L + 1])
            ref.append(model.token_nll(x[None, :-1], x[None, 1:])[0])
    scorer = T.make_scorer(model, hp, rt)
    got = []
    for r in range(world):
        source = T.LocalSegments(stream, np.ones_like(stream), r, world)
        while (seg := source.next(scorer.max_targets, scorer.context)) is not None:
            got.append(scorer.score(seg))
    assert sum(len(g) for g in got) == len(stream) - 1 and len(got) > world
    np.testing.assert_allclose(np.concatenate(got), torch.cat(ref).numpy(), rtol=1e-5, atol=1e-5)


def test_sliding_with_stride_equal_to_window_is_flat(model: Any, rt: Any, stream: np.ndarray) -> None:
    segs = _segments(stream, 200)
    flat = np.concatenate(_score_all(model, rt, _hp("flat"), segs))
    sliding = np.concatenate(_score_all(model, rt, _hp("sliding", EVAL_STRIDE=64), segs))
    np.testing.assert_allclose(sliding, flat, rtol=1e-5, atol=1e-5)
    narrow = np.concatenate(_score_all(model, rt, _hp("sliding", EVAL_STRIDE=8), segs))
    assert not np.allclose(narrow, flat, atol=1e-3)  # more context per target: other scores


@pytest.mark.parametrize("mode", list(MODES))
def test_scores_do_not_depend_on_later_tokens(mode: str, model: Any, rt: Any, stream: np.ndarray) -> None:
    """Changing every token after position t leaves the scores of targets up to t unchanged: inside
    a segment (t in the first one, where no adaptation has happened yet) and across segments."""
    hp = _hp(mode)
    max_targets = hp.TTT_CHUNK if mode.startswith("ttt") else hp.EVAL_SEGMENT_TOKENS
    segs = _segments(stream, max_targets)
    base = np.concatenate(_score_all(model, rt, hp, segs))
    rng = np.random.default_rng(0)
    for t in (1 + segs[0].n_targets // 2, 1 + segs[0].n_targets + 40, len(stream) - 30):
        changed = stream.copy()
        changed[t + 1 :] = rng.integers(4, 8192, len(stream) - t - 1)
        # the same segments (the harness cuts them from the real stream), other tokens after t
        ends = np.cumsum([1] + [s.n_targets for s in segs])
        resegs = [_seg(changed, lo, hi) for lo, hi in itertools.pairwise(ends.tolist())]
        got = np.concatenate(_score_all(model, rt, hp, resegs))
        # targets are positions 1..n-1: those up to t are the first t scores
        np.testing.assert_allclose(got[:t], base[:t], rtol=1e-5, atol=1e-5)
        assert not np.allclose(got[t:], base[t:], atol=1e-3)


@pytest.mark.parametrize("mode", list(MODES))
def test_first_segment_cut_anywhere_replays_in_a_fresh_scorer(mode: str, model: Any, rt: Any,
                                                              stream: np.ndarray) -> None:  # fmt: skip
    """The harness's causality audit: a fresh scorer given the first segment cut at a target
    reproduces the scores before the cut."""
    hp = _hp(mode, EVAL_SEGMENT_TOKENS=400)
    seg = _segments(stream, 400)[0]
    full = _score_all(model, rt, hp, [seg])[0]
    for cut in (1, 17, seg.n_targets // 2, seg.n_targets - 1):
        k = seg.context
        part = T.Segment(seg.tokens[: k + cut], cut, seg.target_bytes[:cut], 0, seg.start)
        np.testing.assert_allclose(_score_all(model, rt, hp, [part])[0], full[:cut], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", list(MODES))
def test_logprob_rows_are_normalized_and_agree_with_the_scores(mode: str, model: Any, rt: Any,
                                                              stream: np.ndarray) -> None:  # fmt: skip
    hp = _hp(mode)
    scorer = T.make_scorer(model, hp, rt)
    try:
        for seg in _segments(stream, hp.TTT_CHUNK)[:4]:
            nll = scorer.score(seg)
            idx = np.array([0, seg.n_targets // 2, seg.n_targets - 1])
            rows = scorer.logprobs(seg, idx)
            assert rows.shape == (3, hp.VOCAB_SIZE) and rows.dtype == np.float32
            np.testing.assert_allclose(np.logaddexp.reduce(rows.astype(np.float64), axis=1), 0, atol=1e-4)
            targets = seg.tokens[len(seg.tokens) - seg.n_targets :][idx].astype(np.int64)
            np.testing.assert_allclose(-rows[np.arange(3), targets], nll[idx], rtol=1e-5, atol=1e-5)
            scorer.committed(seg)
    finally:
        scorer.close()


@pytest.mark.parametrize("mode", ["ttt", "ttt-carry", "ttt-carry-sliding"])
def test_ttt_learns_only_from_committed_segments(mode: str, model: Any, rt: Any, stream: np.ndarray) -> None:
    """Its first segment is the artifact's model (the same scorer without adapters); without
    committed() it never moves; with it, later scores change."""
    hp = _hp(mode)
    base_hp = _hp("doc" if hp.TTT_CONTEXT == "doc" else "sliding")
    segs = _segments(stream, hp.TTT_CHUNK)
    base = _score_all(model, rt, base_hp, segs)
    adapted = _score_all(model, rt, hp, segs)
    never_committed = _score_all(model, rt, hp, segs, commit=False)
    np.testing.assert_allclose(adapted[0], base[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(never_committed), np.concatenate(base), rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.concatenate(adapted[1:]), np.concatenate(base[1:]), atol=1e-3)


def test_ttt_lowers_the_loss_of_text_it_has_already_scored(model: Any, rt: Any, stream: np.ndarray) -> None:
    """One document whose text repeats: after adapting on the first copies the adapters predict
    the later ones better than the artifact's model does (same windows)."""
    piece = stream[stream != BOS][:32]
    doc = np.concatenate(([BOS], np.tile(piece, 8)))
    segs = _segments(doc, 32)
    hp = _hp("ttt", TTT_LR=0.02)
    base = _score_all(model, rt, _hp("doc"), segs)
    adapted = _score_all(model, rt, hp, segs)
    assert adapted[-1].mean() < base[-1].mean() - 0.05


def test_ttt_reset_per_document_scores_a_new_document_with_the_artifacts_weights(
    model: Any, rt: Any, stream: np.ndarray
) -> None:
    """reset=doc: the adapters learnt on one document are not used for the next; a segment that
    holds the end of one document and the start of another scores each with its own adapters."""
    hp = _hp("ttt")
    segs = _segments(stream, 200)  # several documents per segment: both banks in one forward
    base = np.concatenate(_score_all(model, rt, _hp("doc"), segs))
    adapted = np.concatenate(_score_all(model, rt, hp, segs))
    starts = np.flatnonzero(stream == BOS)
    seg_starts = np.cumsum([0] + [s.n_targets for s in segs[:-1]]) + 1
    # a document that starts inside a segment is scored (all of it, up to the next segment) by
    # fresh adapters, i.e. the artifact's model; its BOS target belongs to the previous document
    for b in starts[1:]:
        nxt = seg_starts[seg_starts > b]
        if nxt.size == 0 or b in seg_starts:
            continue
        lo, hi = b + 1, min(int(nxt[0]), *(int(s) for s in starts[starts > b][:1]))
        np.testing.assert_allclose(adapted[lo - 1 : hi - 1], base[lo - 1 : hi - 1], rtol=1e-5, atol=1e-5)
    assert not np.allclose(adapted, base, atol=1e-3)  # and documents that span segments adapt


@pytest.mark.parametrize("mode", list(MODES))
def test_full_eval_over_proxy_val_gives_a_finite_bpb(mode: str, model: Any, rt: Any, proxy_dir: Path) -> None:
    hp = _hp(mode)
    hp.DATA_PATH = str(proxy_dir / "sp8192_caseops")
    hp.VAL_TOKEN_LIMIT = 1500
    tokens, tok_bytes, source = T.load_validation(hp)
    res = T.evaluate(model, tokens, tok_bytes, hp, rt, mode=hp.EVAL_MODE)
    assert source == "sidecar" and res["val_tokens"] == 1500 and res["val_bytes"] == int(tok_bytes[1:].sum())
    assert math.isfinite(res["val_bpb"]) and 0 < res["val_bpb"] < 20
    assert not any(p.requires_grad is False for p in model.parameters())  # adapters taken off


def test_bad_eval_settings_are_one_line_errors(model: Any, rt: Any) -> None:
    bad: list[tuple[str, object]] = [("EVAL_MODE", "beam"), ("EVAL_STRIDE", 0), ("TTT_TARGETS", "q,lm"),
                                     ("TTT_LAYERS", "7")]  # fmt: skip
    for word, value in bad:
        hp = _hp("sliding" if word == "EVAL_STRIDE" else "ttt")
        setattr(hp, word, value)
        with pytest.raises(T.TrainerError, match=word):
            T.make_scorer(model, hp, rt).close()
    scorer = T.make_scorer(model, _hp("doc"), rt)
    scorer.score(T.Segment(np.array([5, BOS, 7, 9], dtype=np.uint16), 3, None, 0, 1))
    with pytest.raises(T.TrainerError, match="does not continue"):  # a rank's segments are in order
        scorer.score(T.Segment(np.array([8, 11], dtype=np.uint16), 1, None, 1, 9))
    with pytest.raises(T.TrainerError, match="context"):  # less than the window it asked for
        T.make_scorer(model, _hp("doc"), rt).score(
            T.Segment(np.arange(10, 20, dtype=np.uint16), 2, None, 0, 100)
        )


def test_eval_phase_runs_a_scorer_from_an_artifact(
    model: Any, rt: Any, proxy_dir: Path, tokenizers_dir: Path, tmp_path: Path
) -> None:
    """PGOLF_PHASE=eval with EVAL_MODE=ttt: the standalone eval scores the local val segments."""
    hp = _hp()
    hp.EXPORT_MODE, hp.ARTIFACT_TARGET_BYTES = "rtn", 0
    T.export_model(model, hp, rt, "rtn", None, str(tmp_path / "art" / T.ARTIFACT_NAME))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({k: str(int(v) if isinstance(v, bool) else v) for k, v in TINY.items()})
    env.update(PGOLF_PHASE="eval", EVAL_MODE="ttt", DATA_PATH=str(proxy_dir / "sp8192_caseops"),
               ARTIFACT_DIR=str(tmp_path / "art"), RESULT_PATH=str(tmp_path / "result.json"),
               VAL_TOKEN_LIMIT="1000", TOKENIZER_PATH=str(tokenizers_dir / CASEOPS_TOKENIZER),
               CUDA_VISIBLE_DEVICES="")  # fmt: skip
    p = subprocess.run([sys.executable, str(TRAINER)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["val_tokens"] == 1000 and math.isfinite(res["val_bpb"])


@pytest.mark.parametrize("mode", ["flat", "sliding", "doc", "ttt"])
def test_more_context_per_segment_changes_nothing(mode: str, model: Any, rt: Any, stream: np.ndarray) -> None:
    """A scorer reads only the context its windows need: segments that carry 150 tokens of context
    (more than the 64 it asks for) score exactly as segments that carry what it asked for."""
    hp = _hp(mode)
    segs = _segments(stream, hp.TTT_CHUNK if mode == "ttt" else hp.EVAL_SEGMENT_TOKENS)
    ends = np.cumsum([1] + [s.n_targets for s in segs])
    wide = [_seg(stream, lo, hi, 150) for lo, hi in itertools.pairwise(ends.tolist())]
    np.testing.assert_allclose(
        np.concatenate(_score_all(model, rt, hp, wide)),
        np.concatenate(_score_all(model, rt, hp, segs)),
        atol=1e-5,
    )


@pytest.mark.parametrize("mode", ["sliding", "doc"])
def test_stride_one_gives_each_target_exactly_the_window_before_it(
    mode: str, model: Any, rt: Any, stream: np.ndarray
) -> None:
    """Checked against the model run by hand on each target's context: the `window` tokens before
    it (doc: none before its document's BOS; the BOS target itself belongs to the previous one)."""
    hp = _hp(mode, EVAL_STRIDE=1)
    nll = np.concatenate(_score_all(model, rt, hp, _segments(stream, 200)))
    starts = np.flatnonzero(stream == BOS)
    for t in (5, 63, 64, 65, 150, int(starts[3]), int(starts[3]) + 1, int(starts[3]) + 2, len(stream) - 1):
        lo = max(0, t - 64)
        if mode == "doc":
            lo = max(lo, int(starts[starts <= t - 1][-1]))
        with torch.no_grad():
            z = model.logits(model.hidden(torch.from_numpy(stream[lo:t])[None]))[0, -1]
        assert nll[t - 1] == pytest.approx(float(-torch.log_softmax(z, -1)[stream[t]]), abs=1e-4)


def test_ttt_without_steps_scores_exactly_as_doc(model: Any, rt: Any, stream: np.ndarray) -> None:
    """TTT's scoring is the doc scorer's (same windows, same stride): with TTT_STEPS=0 nothing is
    learnt and every score is doc's; with the default one step, later segments differ."""
    segs = _segments(stream, _hp("ttt").TTT_CHUNK)
    doc = np.concatenate(_score_all(model, rt, _hp("doc"), segs))
    np.testing.assert_allclose(np.concatenate(_score_all(model, rt, _hp("ttt", TTT_STEPS=0), segs)), doc,
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    assert not np.allclose(np.concatenate(_score_all(model, rt, _hp("ttt"), segs)), doc, atol=1e-3)


def test_ttt_stops_learning_after_its_time_limit(model: Any, rt: Any, stream: np.ndarray) -> None:
    """TTT_MAX_SECONDS: past it (here at once) nothing more is learnt, and the scores are doc's."""
    segs = _segments(stream, _hp("ttt").TTT_CHUNK)
    doc = np.concatenate(_score_all(model, rt, _hp("doc"), segs))
    limited = np.concatenate(_score_all(model, rt, _hp("ttt-carry", TTT_MAX_SECONDS=1e-9), segs))
    np.testing.assert_allclose(limited, doc, rtol=1e-5, atol=1e-5)


def test_carried_adapters_take_what_they_learnt_into_the_next_document(model: Any, rt: Any,
                                                                      stream: np.ndarray) -> None:  # fmt: skip
    """Two documents of the same text: carried adapters (TTT_RESET=never) score the second better
    than the artifact's model, adapters reset per document score it exactly as the artifact's."""
    piece = stream[stream != BOS][:96]
    two = np.concatenate(([BOS], piece, [BOS], piece))
    segs = _segments(two, 32)
    second = slice(len(piece) + 1, None)  # the second document's targets (after its BOS): 98, ...
    base = np.concatenate(_score_all(model, rt, _hp("doc"), segs))[second]
    reset = np.concatenate(_score_all(model, rt, _hp("ttt", TTT_LR=0.02), segs))[second]
    carried = np.concatenate(_score_all(model, rt, _hp("ttt", TTT_LR=0.02, TTT_RESET="never"), segs))[second]
    # its first segment holds the first document's last target (its BOS) and 31 of its own
    np.testing.assert_allclose(reset[:31], base[:31], rtol=1e-5, atol=1e-5)  # reset: fresh adapters
    assert carried[:31].mean() < base[:31].mean() - 0.05


def test_phase_syncs_need_ranks_to_share_with(model: Any, rt: Any, stream: np.ndarray) -> None:
    """One process: TTT_SYNC_PHASES changes nothing (there is no other rank to learn from)."""
    segs = _segments(stream, _hp("ttt").TTT_CHUNK)
    alone = np.concatenate(_score_all(model, rt, _hp("ttt-carry", TTT_SYNC_PHASES=0), segs))
    synced = np.concatenate(_score_all(model, rt, _hp("ttt-carry", TTT_SYNC_PHASES=4), segs))
    np.testing.assert_array_equal(synced, alone)
    with pytest.raises(T.TrainerError, match="TTT_SYNC_PHASES=-1: expected >= 0"):
        T.make_scorer(model, _hp("ttt-carry", TTT_SYNC_PHASES=-1), rt).close()


@pytest.mark.slow
def test_phase_syncs_average_the_ranks_adapters_after_what_each_has_scored(
    proxy_dir: Path, tmp_path: Path
) -> None:
    """2 gloo ranks, carried TTT with P phases: each rank makes exactly P-1 syncs, at k/P of its own
    range (P=40: more phases than it has segments, so one commit ends several, and none hangs);
    after each, both ranks hold the mean of what they held before it. Until its first sync a rank
    scores exactly as it does alone; after it, with what the other rank learnt. Adapters reset per
    document (TTT_RESET=doc) have nothing to share: no syncs, whatever P says."""
    proxy_stream(proxy_dir)  # skips without the proxy data
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).with_name("ttt_sync_rank.py")), str(proxy_dir), str(tmp_path), "0", "3", "40", "doc:4"]  # fmt: skip
    p = subprocess.run(
        cmd, env={**env, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]
    run = {(r, n): np.load(tmp_path / f"rank{r}_P{n}.npz") for r in (0, 1) for n in (0, 3, 40)}
    for n in (3, 40):
        for r in (0, 1):
            total = int(run[r, n]["range"][0])
            at = run[r, n]["at"]
            assert len(at) == n - 1
            # sync k follows the commit that reaches k/P of the range
            assert all(a * n >= (k + 1) * total for k, a in enumerate(at))
        mean = (run[0, n]["before"] + run[1, n]["before"]) / 2
        np.testing.assert_allclose(run[0, n]["after"], mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(run[0, n]["after"], run[1, n]["after"])
        assert not np.allclose(run[0, n]["before"][0], run[1, n]["before"][0])  # they had learnt apart
    for r in (0, 1):
        assert len(np.load(tmp_path / f"rank{r}_Pdoc:4.npz")["at"]) == 0
        alone, synced = run[r, 0]["nll"], run[r, 3]["nll"]
        scored = np.flatnonzero(np.isfinite(alone))
        assert np.isfinite(synced[scored]).all() and scored.size == int(run[r, 3]["range"][0])
        first_sync = scored[0] + int(run[r, 3]["at"][0])  # stream position where phase 2 starts
        np.testing.assert_array_equal(synced[scored[scored < first_sync]], alone[scored[scored < first_sync]])
        assert not np.allclose(synced[scored[scored >= first_sync]], alone[scored[scored >= first_sync]])

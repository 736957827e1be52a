"""harness.logparse: the facts of a training log, each with its line number, from any trainer's style."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.logparse import MAX_LINE_CHARS, decimals_of, parse_log, read_log
from harness.protocol import (
    EV_ARTIFACT,
    EV_EVAL_END,
    EV_EVAL_START,
    EV_STEP,
    EV_TRAIN_END,
    EV_TRAIN_START,
    format_event,
)

RECORDS = Path(__file__).parent / "data" / "records"
EARLY = RECORDS / "track_10min_16mb" / "2026-03-17_EarlyStyleBaseline" / "train.log"
PHASED = RECORDS / "track_10min_16mb" / "2026-04-20_PhasedTTTStyle_1.0601" / "train_seed42.log"
MID = RECORDS / "track_non_record_16mb" / "2026-03-24_Int6SlidingWindowStyle" / "train_seed7.log"


def line_of(path: Path, needle: str) -> int:
    """1-based number of the last line of ``path`` containing ``needle``."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line]
    assert hits, f"{needle!r} not in {path}"
    return hits[-1]


def test_early_style_log_final_exact_metric_sizes_and_times() -> None:
    facts = read_log(EARLY)
    assert facts.final is not None
    # The _exact line refines the rounded line before it: its digits, the rounded line's eval time.
    assert facts.final.label == "final_int8_zlib_roundtrip_exact"
    assert facts.final.val_bpb == pytest.approx(1.22468311, abs=0)
    assert facts.final.val_loss == pytest.approx(2.07312604, abs=0)
    assert facts.final.line == line_of(EARLY, "final_int8_zlib_roundtrip_exact")
    assert facts.eval_time_ms is not None and facts.eval_time_ms.value == 1398.0
    assert facts.eval_time_ms.line == line_of(EARLY, "final_int8_zlib_roundtrip val_loss")
    # The compressed artifact, not the raw "Total submission size: 67... bytes" printed first.
    assert facts.artifact_bytes is not None
    assert facts.artifact_bytes.line == line_of(EARLY, "Total submission size int8+zlib")
    assert facts.artifact_bytes.label == "int8+zlib"
    code_size = (EARLY.parent / "train_gpt.py").stat().st_size
    assert facts.code_bytes is not None and facts.code_bytes.value == code_size
    assert facts.artifact_bytes.value == 15_815_847 + code_size
    assert facts.train_time_ms is not None and facts.train_time_ms.value == 599412.0
    assert facts.train_time_ms.label == "stopping_early"
    assert facts.steps is not None and facts.steps.value == 13772
    assert facts.planned_steps is not None and facts.planned_steps.value == 20000
    assert facts.step_avg_ms is not None and facts.step_avg_ms.value == 43.52
    assert facts.seed is not None and facts.seed.value == 1337
    assert facts.stopped_early is not None and facts.stopped_early.value == "wallclock_cap"


def test_phased_ttt_style_log_diagnostics_are_never_the_final_score() -> None:
    facts = read_log(PHASED)
    labels = [m.label for m in facts.metrics]
    assert labels == [
        "diagnostic pre-quantization post-ema",
        "diagnostic quantized",
        "quantized_ttt_phased",
    ]
    assert [m.diagnostic for m in facts.metrics] == [True, True, False]
    assert facts.final is not None and facts.final.label == "quantized_ttt_phased"
    assert facts.final.val_bpb == 1.05956571 and facts.final.bpb_decimals == 8
    # total_eval_time wins over the final line's own eval_time (it covers every eval pass).
    assert facts.eval_time_ms is not None and facts.eval_time_ms.value == pytest.approx(517_000.0)
    assert facts.eval_time_ms.label == "total_eval_time"
    assert facts.train_time_ms is not None and facts.train_time_ms.value == 592124.0
    assert facts.steps is not None and facts.steps.value == 4844
    # No step_avg printed: derived from train_time / steps, and labelled so.
    assert facts.step_avg_ms is not None and facts.step_avg_ms.label == "train_time / steps"
    assert facts.step_avg_ms.value == pytest.approx(592124 / 4844)
    assert facts.seed is not None and facts.seed.value == 42  # "  seed: 42" in the hyperparameter dump
    assert facts.val_tokens is not None and facts.val_tokens.value == 47853343
    assert facts.artifact_bytes is not None and facts.artifact_bytes.label == "quantized+pergroup"


def test_sliding_window_exact_is_final_over_the_roundtrip_metric() -> None:
    facts = read_log(MID)
    assert facts.final is not None and facts.final.label == "final_int6_sliding_window_exact"
    assert facts.final.val_bpb == 1.1336734
    assert facts.eval_time_ms is not None and facts.eval_time_ms.value == 68754.0
    assert [m.label for m in facts.metrics] == [
        "final_int6_roundtrip_exact",
        "final_int6_sliding_window_exact",
    ]


def test_periodic_validation_and_training_lines_in_both_step_styles() -> None:
    text = "\n".join(
        [
            "step:0/20000 val_loss:6.9370 val_bpb:4.0978 train_time:0ms step_avg:0.01ms",
            "step:200/20000 train_loss:2.8041 train_time:8677ms step_avg:43.38ms",
            "step:400/20000 val_loss:2.5687 val_bpb:1.5174 train_time:17382ms step_avg:43.45ms",
        ]
    )
    facts = parse_log(text)
    assert facts.final is None  # periodic validation is not a final score
    assert facts.metrics == []
    assert facts.steps is not None and (facts.steps.value, facts.steps.line) == (400, 3)
    assert facts.train_time_ms is not None and facts.train_time_ms.value == 17382.0
    newer = parse_log(
        "500/20000 train_loss: 3.3964 train_time: 0.9m tok/s: 7669991\n4000/20000 train_loss: 2.8961 train_time: 8.0m tok/s: 6566690"
    )
    assert newer.steps is not None and newer.steps.value == 4000
    assert newer.train_time_ms is not None and newer.train_time_ms.value == pytest.approx(8.0 * 60_000)
    assert parse_log("warmup_step:3/20\nwarmup_step: 4/20").steps is None


def test_source_code_printed_at_the_top_of_a_log_never_matches() -> None:
    code = "\n".join(
        [
            '    log0(f"step:{step}/{args.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f}")',
            '    log0(f"final_int8_zlib_roundtrip val_loss:{q_val_loss:.4f} val_bpb:{q_val_bpb:.4f}")',
            '    log0(f"stopping_early: wallclock_cap train_time:{training_time_ms:.0f}ms step:{step}")',
            '    log0(f"Total submission size int8+zlib: {quant_file_bytes + code_bytes} bytes")',
            '    log0(f"seed:{args.seed}")',
            '    log0(f"total_eval_time:{elapsed:.1f}s")',
        ]
    )
    facts = parse_log(code)
    assert facts.final is None and facts.metrics == []
    assert facts.artifact_bytes is None and facts.seed is None and facts.eval_time_ms is None
    assert facts.train_time_ms is None and facts.steps is None


def test_a_raw_size_printed_after_the_compressed_one_does_not_replace_it() -> None:
    facts = parse_log(
        "Total submission size int6+brotli: 15900000 bytes\nTotal submission size: 67000000 bytes"
    )
    assert facts.artifact_bytes is not None and facts.artifact_bytes.value == 15_900_000
    facts = parse_log(
        "Total submission size: 67000000 bytes\nTotal submission size int6+brotli: 15,900,000 bytes"
    )
    assert facts.artifact_bytes is not None and (facts.artifact_bytes.value, facts.artifact_bytes.line) == (
        15_900_000,
        2,
    )


def test_native_protocol_events() -> None:
    lines = [
        "seed:42",
        format_event(EV_TRAIN_START, t=10.0),
        format_event(EV_STEP, step=1, train_loss=9.1, step_ms=120.5),
        format_event(EV_TRAIN_END, step=4850, t=600.0 + 10.0 - 0.5),
        format_event(EV_ARTIFACT, bytes=15_900_123),
        format_event(EV_EVAL_START, t=700.0),
        format_event(
            EV_EVAL_END, val_loss=2.3194421234, val_bpb=1.0598945412, val_tokens=10, val_bytes=31, t=1180.25
        ),
        ":::PGOLF {not json",
    ]
    facts = parse_log("\n".join(lines))
    assert "pgolf" in facts.styles
    assert facts.final is not None and facts.final.line == 7
    assert facts.final.val_bpb == 1.0598945412  # JSON numbers keep every digit
    assert facts.final.bpb_decimals == 10
    assert facts.steps is not None and facts.steps.value == 4850
    assert facts.step_avg_ms is not None and facts.step_avg_ms.value == 120.5
    assert facts.artifact_bytes is not None and facts.artifact_bytes.value == 15_900_123
    assert facts.train_time_ms is not None and facts.train_time_ms.value == pytest.approx(599_500.0)
    assert facts.eval_time_ms is not None and facts.eval_time_ms.value == pytest.approx(480_250.0)
    assert [e.label for e in facts.events] == [
        EV_TRAIN_START,
        EV_STEP,
        EV_TRAIN_END,
        EV_ARTIFACT,
        EV_EVAL_START,
        EV_EVAL_END,
    ]
    assert any("line 8" in w for w in facts.warnings)


def test_decimals_of() -> None:
    assert decimals_of("1.2244") == 4
    assert decimals_of("1.22436570") == 8
    assert decimals_of("2") == 0
    assert decimals_of("1e-3") == 3
    assert decimals_of("1.5e-05") == 6


def test_odd_files_are_read_as_far_as_they_make_sense(tmp_path: Path) -> None:
    junk = tmp_path / "junk.log"
    junk.write_bytes(
        os.urandom(4096)
        + b"\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n"
        + b"\xff\xfe\x00" * 100
    )
    facts = read_log(junk)
    assert facts.final is not None and facts.final.val_bpb == 1.2
    assert any("UTF-8" in w for w in facts.warnings)

    huge = tmp_path / "huge.log"
    huge.write_text(
        "x" * (MAX_LINE_CHARS * 50) + "\nquantized_ttt_phased val_loss:2.3 val_bpb:1.06 eval_time:500000ms\n"
    )
    facts = read_log(huge)
    assert facts.final is not None and facts.final.line == 2
    assert any("longer than" in w for w in facts.warnings)

    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert read_log(empty).final is None

    missing = read_log(tmp_path / "missing.log")
    assert missing.final is None and missing.warnings

    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.log"
        os.mkfifo(fifo)
        facts = read_log(fifo)  # must not block waiting for a writer
        assert facts.final is None and any("not a regular file" in w for w in facts.warnings)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_parse_log_never_raises(text: str) -> None:
    parse_log(text)
    parse_log("step:1/2 train_loss:" + text + "\nfinal val_loss:" + text + " val_bpb:1.0\n" + text)


def test_metric_lines_with_spaces_for_colons_and_a_bare_time_field() -> None:
    facts = parse_log(
        "float (EMA) val_loss 2.33001 val_bpb 1.06480\n"
        "ensemble_sliding val_loss:1.9139 val_bpb:1.1335 stride:64 time:68826ms\n"
        "ensemble_sliding_exact val_loss:1.91389421 val_bpb:1.13351895\n"
        "final val_loss 2.319442 val_bpb 1.059894\n"
    )
    assert [m.label for m in facts.metrics] == ["ensemble_sliding_exact", "final"]
    assert facts.metrics[0].eval_time_ms == 68826.0
    assert facts.final is not None and (facts.final.val_loss, facts.final.val_bpb) == (2.319442, 1.059894)
    assert facts.final.bpb_decimals == 6
    # Hyperparameter names that merely contain val_bpb are not metrics.
    assert (
        parse_log(
            "  val_bpb_every: 500\n  target_val_bpb 1.05\nval_bpb:enabled tokenizer_kind=sentencepiece"
        ).metrics
        == []
    )


def test_adversarial_lines_are_parsed_in_linear_time() -> None:
    # Long runs of label-like words before val_bpb once made a single regex backtrack quadratically.
    junk = ("a " * 2000 + "val_bpb x\n") * 100 + ("val_bpb:1 " * 400 + "\n") * 100
    junk += "".join(
        f"bytes {frag * 300}\n" for frag in ("Total submission size ", "Serialized model ", "Code size ")
    )
    start = time.perf_counter()
    facts = parse_log(junk + "final_int8_zlib_roundtrip_exact val_loss:2.07 val_bpb:1.22\n")
    assert time.perf_counter() - start < 5.0
    assert facts.final is not None and facts.final.line == 204


# ---------------------------------------------------------------- line shapes of the challenge's logs


def test_sliding_window_finals_with_settings_between_label_and_values() -> None:
    facts = parse_log(
        "final_sliding_window_eval stride:64 val_loss:1.9511 val_bpb:1.1556 eval_time:75096ms\n"
        "final_sliding_window_eval_exact stride:64 val_loss:1.95110428 val_bpb:1.15555486\n"
    )
    assert facts.final is not None and facts.final.label == "final_sliding_window_eval_exact"
    assert facts.final.val_bpb == 1.15555486 and facts.final.val_loss == 1.95110428
    assert (
        facts.eval_time_ms is not None
        and facts.eval_time_ms.value == 75096.0
        and facts.eval_time_ms.line == 1
    )


def test_an_alias_line_repeating_the_final_keeps_its_eval_time() -> None:
    facts = parse_log(
        "final_int6_sliding_window val_loss:1.8958 val_bpb:1.1228 stride:64 eval_time:73133ms\n"
        "final_int6_sliding_window_exact val_loss:1.89576235 val_bpb:1.12278022\n"
        "final_int8_zlib_roundtrip_exact val_loss:1.89576235 val_bpb:1.12278022\n"
    )
    assert facts.final is not None and facts.final.label == "final_int6_sliding_window_exact"
    assert facts.eval_time_ms is not None and facts.eval_time_ms.value == 73133.0
    assert len(facts.finals) == 1


def test_timestamp_prefixes_and_key_colon_value_lines() -> None:
    facts = parse_log(
        "1776142360.541   seed: 7\n"
        "[19:23:20] world_size: 8\n"
        "1776143349.278 stopping_early: wallclock_cap train_time: 587091ms step: 4832/20000\n"
        "2026-04-13T10:00:00Z quantized_ttt_phased val_loss:2.76951521 val_bpb:1.07216564 eval_time:500104ms\n"
        "1776144156.999 total_eval_time:500.1s\n"
    )
    assert facts.seed is not None and facts.seed.value == 7
    assert facts.world_size is not None and facts.world_size.value == 8
    assert facts.train_time_ms is not None and facts.train_time_ms.value == 587091.0
    assert facts.steps is not None and facts.steps.value == 4832
    assert facts.final is not None and facts.final.val_bpb == 1.07216564
    assert facts.eval_time_ms is not None and facts.eval_time_ms.label == "total_eval_time"


def test_a_hyperparameter_dump_on_one_line_gives_the_seed() -> None:
    dump = "activation=relu2 batch_tokens=524288 lr=0.04 model_dim=768 run_id=x seed=1337 vocab_size=8192"
    facts = parse_log(
        dump + "\nfinal_sliding val_loss:2.98 val_bpb:1.1568 (stride=16, T=0.90) eval_time:428712ms\n"
    )
    assert facts.seed is not None and facts.seed.value == 1337 and facts.seed.line == 1
    assert facts.final is not None and facts.final.val_bpb == 1.1568
    # A status line with a seed and a couple of other pairs is not a dump.
    assert parse_log("[19:44:18] DONE seed=1234 rc=0 dur=576s\n").seed is None


def test_printed_source_code_is_never_a_source_of_facts() -> None:
    source = (
        "import os\n"
        "def f():\n"
        "        seed = 0\n"
        "    print(f'final val_loss:{x:.4f} val_bpb:{y:.4f}')\n"
        "Total submission size: 99 bytes\n" + "=" * 100 + "\n"
    )
    facts = parse_log(source + "seed:42\nfinal_int6_roundtrip val_loss:2.5 val_bpb:1.1\n")
    assert facts.source_lines == (1, 5)
    assert facts.seed is not None and facts.seed.value == 42
    assert facts.artifact_bytes is None


def test_a_compressed_code_size_is_kept_apart_from_the_codes_length() -> None:
    facts = parse_log("Code size (uncompressed): 139831 bytes\nCode size (compressed): 28599 bytes\n")
    assert facts.code_bytes is not None and facts.code_bytes.value == 139831
    assert facts.code_bytes_compressed is not None and facts.code_bytes_compressed.value == 28599


def test_several_runs_in_one_log_the_seed_is_that_of_the_final_run() -> None:
    facts = parse_log(
        "seed:1337\nfinal_int8_zlib_roundtrip_exact val_loss:2.4 val_bpb:1.43\n"
        "seed:42\nfinal_int8_zlib_roundtrip_exact val_loss:2.5 val_bpb:1.47\n"
    )
    assert [s.value for s in facts.seeds] == [1337, 42]
    assert facts.seed is not None and facts.seed.value == 42
    assert len(facts.finals) == 2 and facts.final is not None and facts.final.val_bpb == 1.47


# The challenge's own logs (tests/data/records_sample): the final each folder reports and the seed
# each log ran, as read by hand. Before this parser learnt the shapes above, it took the rounded
# int6 round-trip for smeargate's sliding-window final, seed 0 from printed source for Vocab4096,
# and no seed at all from one-line dumps and timestamped lines.
REAL_LOGS: list[tuple[str, int, float, str]] = [
    (
        "track_10min_16mb/2026-03-19_smeargate_orthoinit_muonwd/train.log",
        1337,
        1.15555486,
        "final_sliding_window_eval_exact",
    ),
    (
        "track_10min_16mb/2026-04-01_Vocab4096_MLPMult4_WD085/train_seed42.log",
        42,
        1.0974384,
        "final_int6_sliding_window",
    ),
    (
        "track_10min_16mb/2026-03-24_74M_Ternary_UNet_FP8_10L_8192BPE_YaRN_NeoMuon/ternary_log_7.txt",
        7,
        1.1578,
        "final_sliding",
    ),
    (
        "track_10min_16mb/2026-04-13_VarLenAttn_PhasingTTT2000/logs/train1.txt",
        1,
        1.07300174,
        "quantized_ttt_phased",
    ),
    (
        "track_10min_16mb/2026-03-22_11L_EMA_GPTQ-lite_warmdown3500_QAT015_1.1233/train_seed42.log",
        42,
        1.12360306,
        "final_int6_sliding_window_exact",
    ),
    (
        "track_non_record_16mb/2026-04-04_GDN_Hybrid_LongContext/logs_experiment/hybrid_gdn_1xh100_600s_seq32768.txt",
        1342,
        1.47025754,
        "final_int8_zlib_roundtrip_exact",
    ),
    (
        "track_non_record_16mb/2026-03-24_106M_Binary_Asymmetric_UNet_FP8_15L_8192BPE_YaRN_NeoMuon_Smear/binary_log.txt",
        42,
        1.1239,
        "final_sliding",
    ),
]


@pytest.fixture(scope="module")
def sample_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from records_sample import unpack

    return unpack(tmp_path_factory.mktemp("records_sample"))


@pytest.mark.parametrize(
    ("rel", "seed", "bpb", "label"), REAL_LOGS, ids=[r[0].split("/")[1][:30] for r in REAL_LOGS]
)
def test_the_challenges_logs_final_and_seed(
    sample_records: Path, rel: str, seed: int, bpb: float, label: str
) -> None:
    facts = read_log(sample_records / rel)
    assert facts.seed is not None and facts.seed.value == seed
    assert facts.final is not None and (facts.final.val_bpb, facts.final.label) == (bpb, label)


def test_a_failed_extra_pass_stays_a_final_the_checker_can_tell_apart(sample_records: Path) -> None:
    # seed 42's log ends with a TTT pass that failed (1.336); the submission reports the sliding window.
    facts = read_log(
        sample_records
        / "track_10min_16mb/2026-04-04_SP4096_DepthRecurrence_ParallelResid_MuonEqR/train_seed42.log"
    )
    finals = [m.val_bpb for m in facts.finals]
    assert 1.08938974 in finals and facts.final is not None and facts.final.val_bpb == 1.336032

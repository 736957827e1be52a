"""harness.unwrap: the program inside a packed train_gpt.py, recovered without running anything."""

from __future__ import annotations

import base64
import lzma
import zlib
from pathlib import Path

from harness.packcode import pack_source
from harness.unwrap import unwrap

PROGRAM = "import torch\nprint('hello from the trainer')\n"


def test_pgolf_packed_code_is_recovered(tmp_path: Path) -> None:
    f = tmp_path / "train_gpt.py"
    f.write_text(pack_source(PROGRAM, minify=False))
    got = unwrap(f)
    assert got is not None and got.source == PROGRAM and got.files == ("train_gpt.py",)


def test_the_challenge_wrappers_lzma_b85_and_raw_lzma_with_filters(tmp_path: Path) -> None:
    f = tmp_path / "train_gpt.py"
    blob = base64.b85encode(lzma.compress(PROGRAM.encode())).decode()
    f.write_text(f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{blob}")))\n')
    got = unwrap(f)
    assert got is not None and got.source == PROGRAM
    filters = [{"id": lzma.FILTER_LZMA2}]
    raw = base64.b85encode(lzma.compress(PROGRAM.encode(), format=lzma.FORMAT_RAW, filters=filters)).decode()
    f.write_text(
        "import lzma as L,base64 as B\n"
        f'exec(L.decompress(B.b85decode("{raw}"),format=L.FORMAT_RAW,filters=[{{"id":L.FILTER_LZMA2}}]))\n'
    )
    got = unwrap(f)
    assert got is not None and got.source == PROGRAM
    z = base64.b64encode(zlib.compress(PROGRAM.encode())).decode()
    f.write_text(f'import zlib, base64\nexec(zlib.decompress(base64.b64decode("{z}")).decode())\n')
    got = unwrap(f)
    assert got is not None and got.source == PROGRAM


def test_a_stub_that_runs_a_sibling_file_names_both(tmp_path: Path) -> None:
    (tmp_path / "train_gpt_decode.py").write_text(PROGRAM)
    f = tmp_path / "train_gpt.py"
    f.write_text('exec(open(__file__.replace("train_gpt.py","train_gpt_decode.py")).read())\n')
    got = unwrap(f)
    assert got is not None and got.source == PROGRAM
    assert got.files == ("train_gpt.py", "train_gpt_decode.py")


def test_nothing_outside_the_folder_is_read_and_nothing_is_run(tmp_path: Path) -> None:
    outside = tmp_path / "secret.py"
    outside.write_text(PROGRAM)
    folder = tmp_path / "rec"
    folder.mkdir()
    f = folder / "train_gpt.py"
    for target in (str(outside), "../secret.py", "/etc/hostname"):
        f.write_text(f"exec(open({target!r}).read())\n")
        assert unwrap(f) is None, target
    # Any other call is refused, not evaluated: the side effect never happens.
    marker = tmp_path / "ran"
    f.write_text(f"exec(__import__('os').system('touch {marker}') or 'x')\n")
    assert unwrap(f) is None and not marker.exists()
    # Plain programs are not wrappers; neither are junk and broken syntax.
    f.write_text(PROGRAM)
    assert unwrap(f) is None
    f.write_bytes(b"\x00\xff(((")
    assert unwrap(f) is None
    f.write_text('import lzma\nexec(lzma.decompress(b"not lzma"))\n')
    assert unwrap(f) is None

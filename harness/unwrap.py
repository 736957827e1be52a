"""Recover the program inside a packed ``train_gpt.py`` without executing it.

Records ship their counted code compressed (`import lzma as L,base64 as B; exec(L.decompress(
B.b85decode("...")))`) or as a stub that runs a sibling file (`exec(open(__file__.replace(
"train_gpt.py","train_gpt_decode.py")).read())`). A reviewer compares the program that ran, so
this module evaluates the argument of the one top-level ``exec`` by walking its syntax tree: only
string constants, the known decoders below, ``.decode()``, and reading a file that sits in the
same folder. Anything else means "not a wrapper we can read" (None); nothing is ever run.
"""

from __future__ import annotations

import ast
import base64
import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Decoders a packed file may call: (module, function) -> pure function on bytes.
_DECODERS: dict[tuple[str, str], Callable[[bytes], bytes]] = {
    ("lzma", "decompress"): lzma.decompress,
    ("zlib", "decompress"): zlib.decompress,
    ("bz2", "decompress"): bz2.decompress,
    ("gzip", "decompress"): gzip.decompress,
    ("base64", "b85decode"): base64.b85decode,
    ("base64", "b64decode"): base64.b64decode,
    ("base64", "a85decode"): base64.a85decode,
    ("base64", "b32decode"): base64.b32decode,
}
# No wrapper needs more than a few layers; a deeper chain is not worth following.
MAX_DEPTH = 32
MAX_SOURCE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Unwrapped:
    """The program a wrapper runs, and the files it was read from (the wrapper and any sibling)."""

    source: str
    files: tuple[str, ...]
    how: str


class _NotAWrapper(Exception):
    pass


def _aliases(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                out[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                out[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return out


class _Evaluator:
    def __init__(
        self, folder: Path, own_name: str, aliases: dict[str, str], names: dict[str, ast.expr]
    ) -> None:
        self.folder, self.own_name, self.aliases, self.names = folder, own_name, aliases, names
        self.read: list[str] = []

    def value(self, node: ast.expr, depth: int = 0) -> str | bytes:
        if depth > MAX_DEPTH:
            raise _NotAWrapper("too deep")
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            return node.value
        if isinstance(node, ast.Name) and node.id == "__file__":
            return self.own_name
        if isinstance(node, ast.Name) and node.id in self.names:
            # A top-level variable (S=L.decompress(...)): its expression, under the same rules.
            return self.value(self.names.pop(node.id), depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.value(node.left, depth + 1), self.value(node.right, depth + 1)
            if type(left) is not type(right):
                raise _NotAWrapper("mixed str and bytes")
            return left + right  # type: ignore[operator]
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise _NotAWrapper(f"unsupported expression {type(node).__name__}")

    def call(self, node: ast.Call, depth: int) -> str | bytes:
        func = node.func
        args = [self.value(a, depth + 1) for a in node.args]
        if isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id in self.aliases:
                key = (self.aliases[func.value.id].split(".")[0], func.attr)
                if key == ("lzma", "decompress") and len(args) == 1 and node.keywords:
                    # Raw LZMA streams name their container and filters: lzma constants only.
                    kwargs = {k.arg: self.lzma_constant(k.value) for k in node.keywords if k.arg}
                    if set(kwargs) - {"format", "filters"}:
                        raise _NotAWrapper("unsupported lzma argument")
                    data = args[0].encode("ascii") if isinstance(args[0], str) else args[0]
                    fmt, filters = kwargs.get("format", lzma.FORMAT_AUTO), kwargs.get("filters")
                    if not isinstance(fmt, int) or not (filters is None or isinstance(filters, list)):
                        raise _NotAWrapper("unsupported lzma argument")
                    return lzma.decompress(data, format=fmt, filters=filters)
                if key in _DECODERS and len(args) == 1 and not node.keywords:
                    data = args[0].encode("ascii") if isinstance(args[0], str) else args[0]
                    return _DECODERS[key](data)
            if node.keywords:
                raise _NotAWrapper("keyword arguments")
            target = self.value(func.value, depth + 1)
            if func.attr == "decode" and isinstance(target, bytes):
                return target.decode(*[a for a in args if isinstance(a, str)])
            if func.attr == "encode" and isinstance(target, str):
                return target.encode(*[a for a in args if isinstance(a, str)])
            if func.attr == "replace" and isinstance(target, str) and len(args) == 2:
                old, new = args
                if isinstance(old, str) and isinstance(new, str):
                    return target.replace(old, new)
            if func.attr == "read" and isinstance(target, _OpenFile):
                return target.text
            raise _NotAWrapper(f"unsupported call .{func.attr}")
        if isinstance(func, ast.Name) and func.id in self.aliases and len(args) == 1:
            module, _, attr = self.aliases[func.id].partition(".")
            if (module, attr) in _DECODERS:
                data = args[0].encode("ascii") if isinstance(args[0], str) else args[0]
                return _DECODERS[(module, attr)](data)
        if isinstance(func, ast.Name) and func.id == "open" and args and isinstance(args[0], str):
            return _OpenFile(self.sibling(args[0]))
        raise _NotAWrapper("unsupported call")

    def lzma_constant(self, node: ast.expr) -> object:
        """``L.FORMAT_RAW``, ``[{"id": L.FILTER_LZMA2}]`` and the like: lzma's own constants, ints, lists, dicts."""
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and self.aliases.get(node.value.id) == "lzma"
            and node.attr.isupper()
        ):
            value = getattr(lzma, node.attr, None)
            if isinstance(value, int):
                return value
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, str)):
            return node.value
        if isinstance(node, ast.List):
            return [self.lzma_constant(e) for e in node.elts]
        if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
            return {
                self.lzma_constant(k): self.lzma_constant(v)
                for k, v in zip(node.keys, node.values, strict=True)
                if k
            }
        raise _NotAWrapper("unsupported lzma argument")

    def sibling(self, name: str) -> str:
        path = Path(name)
        if path.name != name or name in ("", ".", ".."):
            # Only a file in the same folder, named by its bare name (as the wrapper sees __file__).
            raise _NotAWrapper(f"reads {name!r}, not a file beside it")
        target = self.folder / name
        if not target.is_file() or target.stat().st_size > MAX_SOURCE_BYTES:
            raise _NotAWrapper(f"reads {name!r}, which is not in the folder")
        self.read.append(name)
        return target.read_text("utf-8", errors="replace")


class _OpenFile(str):
    """The text of a sibling file opened by the wrapper (``open(...).read()``)."""

    @property
    def text(self) -> str:
        return str(self)


def unwrap(path: Path) -> Unwrapped | None:
    """The program ``path`` runs through a top-level ``exec(...)`` of decoded text; None when it is plain code."""
    try:
        text = path.read_text("utf-8", errors="replace")
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError, RecursionError):
        return None
    execs = [
        n.value
        for n in tree.body
        if isinstance(n, ast.Expr)
        and isinstance(n.value, ast.Call)
        and isinstance(n.value.func, ast.Name)
        and n.value.func.id == "exec"
        and n.value.args
    ]
    # A wrapper is a few lines around one exec; real programs with an exec are left alone.
    if len(execs) != 1 or len(tree.body) > 6:
        return None
    names = {
        n.targets[0].id: n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
    }
    evaluator = _Evaluator(path.parent, path.name, _aliases(tree), names)
    arg = execs[0].args[0]
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "compile":
        arg = arg.args[0] if arg.args else arg
    try:
        value = evaluator.value(arg)
    except (_NotAWrapper, ValueError, lzma.LZMAError, zlib.error, OSError, EOFError, RecursionError):
        return None
    source = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    how = f"exec of {', '.join(evaluator.read)}" if evaluator.read else "decompressed in place"
    return Unwrapped(source=source, files=(path.name, *evaluator.read), how=how)

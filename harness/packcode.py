"""Ship ``train_gpt.py`` as a small self-extracting file (``pgolf package --pack-code``).

Counted code bytes are part of the 16 MB artifact, so records ship their code
compressed. :func:`pack_source` turns Python source into a two-line stub:

    import lzma as L,base64 as B,linecache as C;S=L.decompress(B.b85decode("...")).decode()
    C.cache[__file__]=...;exec(compile(S,__file__,"exec"))

The stub runs the original program in the same module namespace (``__name__``,
``__file__``, ``sys.argv`` unchanged). The source is registered in ``linecache``
under the stub's own path, so ``inspect.getsource`` (torch.compile, dataclasses) keeps
working and tracebacks formatted by the ``traceback`` module (logging, torch elastic)
show the real lines; the interpreter's own last-resort traceback of an uncaught error
reads the file on disk and shows only file, line number and function.

:func:`unpack_source` recovers the source without running anything, so a reviewer
(``pgolf check``) can compare a packed file with its readable copy.
"""

from __future__ import annotations

import ast
import base64
import lzma

from harness.errors import PgolfError

# FORMAT_ALONE has a 13-byte header (xz: ~60); lzma.decompress detects it by itself.
_LZMA_FORMAT = lzma.FORMAT_ALONE
_LZMA_PRESET = 9 | lzma.PRESET_EXTREME

_STUB_HEAD = 'import lzma as L,base64 as B,linecache as C;S=L.decompress(B.b85decode("'
_STUB_TAIL = (
    '")).decode()\n'
    "C.cache[__file__]=(len(S),None,S.splitlines(True),__file__);"
    'exec(compile(S,__file__,"exec"))\n'
)


def _strip_docstrings(tree: ast.AST) -> None:
    """Drop docstrings of the module, classes and functions (a body never ends up empty)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]


def minify_source(src: str, *, strip_docstrings: bool = True) -> str:
    """Comments, blank lines and (optionally) docstrings removed; same program otherwise.

    Goes through the AST (``ast.unparse``), so the result is the same program as
    parsed. Docstrings are dropped because nothing in a trainer reads ``__doc__``;
    pass ``strip_docstrings=False`` for code that does.
    """
    try:
        tree = ast.parse(src)
    except SyntaxError as exc:
        raise PgolfError(
            f"cannot pack: source is not valid Python ({exc.msg} at line {exc.lineno})"
        ) from None
    if strip_docstrings:
        _strip_docstrings(tree)
    return ast.unparse(tree) + "\n"


def pack_source(src: str, *, minify: bool = True, strip_docstrings: bool = True) -> str:
    """A self-extracting Python file that runs exactly the program ``src``."""
    body = minify_source(src, strip_docstrings=strip_docstrings) if minify else src
    if not minify:
        try:
            ast.parse(src)
        except SyntaxError as exc:
            raise PgolfError(
                f"cannot pack: source is not valid Python ({exc.msg} at line {exc.lineno})"
            ) from None
    blob = lzma.compress(body.encode("utf-8"), format=_LZMA_FORMAT, preset=_LZMA_PRESET)
    # base85 has no quote or backslash characters, so it sits in a plain string literal.
    return _STUB_HEAD + base64.b85encode(blob).decode("ascii") + _STUB_TAIL


def is_packed(text: str) -> bool:
    return text.startswith(_STUB_HEAD)


def unpack_source(packed: str) -> str:
    """The program inside a file made by :func:`pack_source`, recovered without executing it."""
    if not is_packed(packed):
        raise PgolfError("not a pgolf packed file: expected it to start with the lzma/base85 stub")
    end = packed.find('"', len(_STUB_HEAD))
    if end < 0:
        raise PgolfError("packed file is truncated: the base85 string is not closed")
    try:
        blob = base64.b85decode(packed[len(_STUB_HEAD) : end])
        return lzma.decompress(blob).decode("utf-8")
    except (ValueError, lzma.LZMAError, UnicodeDecodeError) as exc:
        raise PgolfError(f"packed file is corrupt: {exc}") from None

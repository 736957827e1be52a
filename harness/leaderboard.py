"""The challenge README's leaderboard tables, read into rows (`pgolf check --leaderboard README.md`).

A table is a markdown table whose header starts ``| Run | Score |``; the README has two
(the record track, then non-record submissions), each sorted best score first. A row's
``[info](records/track_<track>/<folder>/README.md)`` link names its folder; rows that link a
pull request instead name none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import PgolfError

_FOLDER_LINK_RE = re.compile(r"records/(?P<track>track_[\w-]+)/(?P<folder>[^/)\s]+)/")
_SCORE_RE = re.compile(r"^\s*(?P<score>\d+\.\d+)\s*$")


@dataclass(frozen=True)
class LeaderboardRow:
    table: int  # 0: the first table (record track), 1: the next (non-record), ...
    position: int  # 0-based within its table: the best score first
    run: str
    score: float
    score_text: str
    author: str
    date: str
    track_dir: str | None
    folder: str | None
    line: int

    def describe(self) -> str:
        return f"{self.score_text} ({self.run!r}, {self.author}, {self.date})"


@dataclass(frozen=True)
class Leaderboard:
    path: Path
    tables: tuple[tuple[LeaderboardRow, ...], ...]

    def row_of(self, folder: str) -> LeaderboardRow | None:
        for table in self.tables:
            for row in table:
                if row.folder == folder:
                    return row
        return None

    def row_below(self, row: LeaderboardRow) -> LeaderboardRow | None:
        """The next worse score in the same table: the record this one displaced."""
        table = self.tables[row.table]
        return table[row.position + 1] if row.position + 1 < len(table) else None


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_leaderboard(text: str, path: Path = Path("README.md")) -> Leaderboard:
    tables: list[tuple[LeaderboardRow, ...]] = []
    rows: list[LeaderboardRow] = []
    header: list[str] | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("|"):
            if header is not None and rows:
                tables.append(tuple(rows))
            header, rows = None, []
            continue
        cells = _cells(line)
        if header is None:
            if len(cells) >= 2 and cells[0].lower() == "run" and cells[1].lower() == "score":
                header = [c.lower() for c in cells]
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the |---|---:| rule under the header
        col = {name: i for i, name in enumerate(header)}
        score = _SCORE_RE.match(cells[col["score"]]) if len(cells) > col["score"] else None
        if score is None:
            continue
        info = " ".join(cells[col["info"] :]) if "info" in col and len(cells) > col["info"] else ""
        link = _FOLDER_LINK_RE.search(info)

        def cell(name: str, cells: list[str] = cells, col: dict[str, int] = col) -> str:
            return cells[col[name]] if name in col and len(cells) > col[name] else ""

        rows.append(
            LeaderboardRow(
                table=len(tables),
                position=len(rows),
                run=cell("run"),
                score=float(score["score"]),
                score_text=score["score"],
                author=cell("author"),
                date=cell("date"),
                track_dir=link["track"] if link else None,
                folder=link["folder"] if link else None,
                line=lineno,
            )
        )
    if header is not None and rows:
        tables.append(tuple(rows))
    if not tables:
        raise PgolfError(f"{path}: no leaderboard table (expected a markdown table with '| Run | Score |')")
    return Leaderboard(path=path, tables=tuple(tables))


def load_leaderboard(path: Path) -> Leaderboard:
    try:
        text = Path(path).read_text("utf-8", errors="replace")
    except OSError as exc:
        raise PgolfError(f"{path}: cannot read the leaderboard ({exc.strerror or exc})") from None
    return parse_leaderboard(text, Path(path))

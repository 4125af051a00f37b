"""Writing scan records as a table, JSON, JSON lines or CSV.

JSON, JSONL and CSV are written record by record as clips finish, so a long batch shows
results early and a crash loses nothing already printed. The table needs every row first.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from typing import Any, TextIO

from detector.config import LABELS
from detector.scan import RECORD_KEYS, ScanRecord

FORMATS = ("table", "json", "jsonl", "csv")

# CSV flattens the nested keys: lists joined by ';', loops and evidence as JSON text.
CSV_COLUMNS = (
    "path", "verdict", "confidence", *[f"score_{label}" for label in LABELS], "duration_s",
    "loop_count", "loop_period_s", "loops", "cuts_s", "flags", "evidence", "model", "error", "elapsed_s",
)


def describe_evidence(item: dict[str, Any] | None) -> str:
    if not item:
        return ""
    text = f"{item['kind']} {item['start_s']:.1f}-{item['end_s']:.1f} s"
    if item.get("source_start_s") is not None:
        text += f" repeats {item['source_start_s']:.1f}-{item['source_end_s']:.1f} s"
    return text + f" ({item['score']:.2f})"


class RecordWriter:
    """Streams records in one format; call `write` per record and `close` once."""

    def __init__(self, fmt: str, stream: TextIO, *, include_features: bool = False,
                 feature_columns: Sequence[str] = ()) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        self.fmt, self.stream = fmt, stream
        self.include_features = include_features
        self.feature_columns = list(feature_columns)
        self._count = 0
        self._rows: list[ScanRecord] = []
        self._csv: csv.DictWriter | None = None

    def write(self, record: ScanRecord) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(record.to_dict(self.include_features), ensure_ascii=False) + "\n")
        elif self.fmt == "json":
            self.stream.write("[\n" if self._count == 0 else ",\n")
            self.stream.write(json.dumps(record.to_dict(self.include_features), ensure_ascii=False, indent=2))
        elif self.fmt == "csv":
            self._write_csv(record)
        else:
            self._rows.append(record)
        self._count += 1
        self.stream.flush()

    def _write_csv(self, record: ScanRecord) -> None:
        if self._csv is None:
            columns = list(CSV_COLUMNS) + (self.feature_columns if self.include_features else [])
            self._csv = csv.DictWriter(self.stream, fieldnames=columns, lineterminator="\n")
            self._csv.writeheader()
        row: dict[str, Any] = {k: getattr(record, k) for k in RECORD_KEYS if k in CSV_COLUMNS}
        for label in LABELS:
            row[f"score_{label}"] = record.scores.get(label, "")
        row["loop_count"] = len(record.loops)
        row["loops"] = json.dumps(record.loops, ensure_ascii=False) if record.loops else ""
        row["evidence"] = json.dumps(record.evidence, ensure_ascii=False) if record.evidence else ""
        row["cuts_s"] = ";".join(f"{c:g}" for c in record.cuts_s)
        row["flags"] = ";".join(record.flags)
        if self.include_features:
            for column in self.feature_columns:
                value = (record.features or {}).get(column)
                row[column] = "" if value is None or not math.isfinite(value) else value
        self._csv.writerow({k: ("" if v is None else v) for k, v in row.items()})

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("[]\n" if self._count == 0 else "\n]\n")
        elif self.fmt == "table":
            self._print_table()
        self.stream.flush()

    def _print_table(self) -> None:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        interactive = self.stream.isatty()
        # Off a terminal rich would wrap at 80 columns; a wide table is easier to grep.
        console = Console(file=self.stream, width=None if interactive else 200,
                          no_color=not interactive, highlight=False, soft_wrap=False)
        table = Table(show_lines=False, expand=False)
        for title in ("path", "verdict", "confidence", "duration_s", "flags", "strongest evidence"):
            table.add_column(title, overflow="fold")
        for r in self._rows:
            if r.error:
                verdict, evidence = "error", r.error
            else:
                verdict = r.verdict or "no model"
                evidence = describe_evidence(r.strongest_evidence())
            cells = (
                r.path,
                verdict,
                "" if r.confidence is None else f"{r.confidence:.2f}",
                "" if r.duration_s is None else f"{r.duration_s:.1f}",
                ",".join(r.flags),
                evidence,
            )
            # Text(), not str: file names are untrusted and must not be read as rich markup.
            table.add_row(*(Text(c) for c in cells))
        console.print(table)

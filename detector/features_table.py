"""Encode once, decide many times: one row of feature columns per labelled clip.

Training, evaluation and threshold tuning read this table, never the videos again. Rows are
keyed by the clip's content SHA-256 and the feature-schema string, so re-running on a grown
data set (or after moving files) extracts only what is new, and a change to the extractors
(a new schema) extracts everything again. Each finished clip is appended to a cache file
beside the table as one JSON line, so an interrupted run loses at most the clips in flight.
A clip that cannot be analysed keeps its row, with the one-line `error` and no features.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from detector.config import ScanConfig
from detector.dataset import LabelledClip

META_COLUMNS = ("path", "label", "group", "variant", "content_sha256", "feature_schema", "duration_s", "error")
SCHEMA_METADATA_KEY = b"detector.feature_schema"


class TableError(Exception):
    """A features table that cannot be used; the message says why in one line."""


def cache_path(table_path: Path) -> Path:
    return table_path.with_name(table_path.name + ".cache.jsonl")


def build_table(
    clips: Sequence[LabelledClip],
    output: str | Path,
    config: ScanConfig | None = None,
    workers: int = 1,
    on_row: Callable[[dict[str, Any]], None] | None = None,
):
    """Extract (or reuse) a row for every clip, write `output` (.parquet or .csv), return it
    as a pandas DataFrame in the order of `clips`."""
    from detector.model import file_sha256
    from detector.pipeline import feature_columns, feature_schema

    config = config or ScanConfig()
    output = Path(output)
    schema = feature_schema(config.extractors)
    columns = feature_columns(config.extractors)
    cached = _read_cache(cache_path(output), schema)
    rows: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, LabelledClip, str]] = []
    for index, clip in enumerate(clips):
        try:
            digest = file_sha256(Path(clip.path))
        except OSError as exc:
            rows[index] = _row(clip, "", schema, None, f"cannot read file: {exc.strerror or exc}", {})
            continue
        hit = cached.get(digest)
        if hit is not None:
            rows[index] = {**hit, **_labels(clip)}      # labels may have been corrected since
        else:
            todo.append((index, clip, digest))
    for row in rows.values():
        if on_row:
            on_row(row)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_path(output), "a", encoding="utf-8") as cache:
        for index, row in _extract_rows(todo, schema, config, workers):
            rows[index] = row
            cache.write(json.dumps(_jsonable(row), sort_keys=True) + "\n")
            cache.flush()
            if on_row:
                on_row(row)
    table = _as_frame([rows[i] for i in range(len(clips))], columns)
    write_table(table, output, schema)
    return table


def _extract_rows(todo, schema: str, config: ScanConfig, workers: int):
    if workers <= 1 or len(todo) <= 1:
        for index, clip, digest in todo:
            yield index, extract_row(clip, digest, schema, config)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(extract_row, clip, digest, schema, config): index for index, clip, digest in todo}
        for future in as_completed(futures):
            yield futures[future], future.result()


def extract_row(clip: LabelledClip, digest: str, schema: str, config: ScanConfig) -> dict[str, Any]:
    """One clip's row; never raises (scan_one records failures)."""
    from detector.scan import scan_one

    record = scan_one(clip.path, config, model=None)
    return _row(clip, digest, schema, record.duration_s, record.error, record.features or {})


def _labels(clip: LabelledClip) -> dict[str, Any]:
    return {"path": clip.path, "label": clip.label, "group": clip.group, "variant": clip.variant}


def _row(clip, digest, schema, duration_s, error, features) -> dict[str, Any]:
    return {**_labels(clip), "content_sha256": digest, "feature_schema": schema,
            "duration_s": duration_s, "error": error, **({} if error else features)}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _read_cache(path: Path, schema: str) -> dict[str, dict[str, Any]]:
    """Successful rows of the current schema by content hash; a torn last line is ignored."""
    found: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return found
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("feature_schema") == schema and not row.get("error") and row.get("content_sha256"):
                found[row["content_sha256"]] = row
    return found


def _as_frame(rows: list[dict[str, Any]], columns: Sequence[str]):
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column in META_COLUMNS:
        if column not in frame:
            frame[column] = None
    for column in columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame else np.nan
    frame["duration_s"] = pd.to_numeric(frame["duration_s"], errors="coerce")
    return frame[list(META_COLUMNS) + list(columns)]


def write_table(table, output: str | Path, schema: str) -> Path:
    """Parquet carries the schema in its metadata; CSV in its `feature_schema` column."""
    output = Path(output)
    tmp = output.with_name(output.name + ".tmp")
    if output.suffix.lower() == ".csv":
        table.to_csv(tmp, index=False)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow = pa.Table.from_pandas(table, preserve_index=False)
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), SCHEMA_METADATA_KEY: schema.encode()})
        pq.write_table(arrow, tmp)
    os.replace(tmp, output)      # a reader never sees half a table
    return output


def read_table(path: str | Path):
    """(DataFrame, feature schema) of a table written by `build_table`."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise TableError(f"features table not found: {path}")
    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype={"error": "string", "group": "string", "variant": "string"})
            schemas = set(table["feature_schema"].dropna().astype(str))
            if len(schemas) > 1:
                raise TableError(f"{path.name} mixes feature schemas; rebuild it with `detector features`")
            schema = next(iter(schemas), None)
        else:
            import pyarrow.parquet as pq

            arrow = pq.read_table(path)
            schema = (arrow.schema.metadata or {}).get(SCHEMA_METADATA_KEY, b"").decode() or None
            table = arrow.to_pandas()
    except TableError:
        raise
    except Exception as exc:
        raise TableError(f"cannot read features table {path.name}: {' '.join(str(exc).split())}") from None
    missing = [c for c in ("path", "label", "error") if c not in table]
    if missing or schema is None:
        raise TableError(f"{path.name} is not a detector features table (no {', '.join(missing) or 'feature schema'})")
    table["group"] = table["group"].fillna(table["path"]).astype(str)
    table["variant"] = table["variant"].fillna("").astype(str)
    return table, schema


def is_table_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".csv") and Path(path).is_file() and not _looks_like_manifest(Path(path))


def _looks_like_manifest(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    return "feature_schema" not in header


def failed_rows(table) -> list[tuple[str, str]]:
    failed = table[table["error"].notna() & (table["error"].astype(str) != "")]
    return list(zip(failed["path"].astype(str), failed["error"].astype(str)))


def print_failures(table, stream=sys.stderr) -> None:
    for path, error in failed_rows(table):
        print(f"failed: {path}: {error}", file=stream)

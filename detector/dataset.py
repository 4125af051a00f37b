"""Labelled clips for training and evaluation: a folder of label-named sub-folders or a manifest.

A manifest is a CSV with columns `path,label[,group][,variant]` (more columns are kept as
they are, e.g. `detector samples make` adds `duration_s,params`). Relative paths are relative
to the manifest's folder. `group` names the source recording: grouped cross-validation never
puts one group in both train and test, so clips cut from one recording, or one rendered
source, must share it. Without a group column every clip is its own group.

In a folder, clips under `LABEL/` are labelled LABEL; a clip under `LABEL/SOURCE/...` belongs
to group `LABEL/SOURCE`, a clip directly under `LABEL/` is its own group.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from detector.config import LABELS, VIDEO_EXTENSIONS


class DatasetError(Exception):
    """A data set that cannot be read; the message says why in one line."""


@dataclass(frozen=True)
class LabelledClip:
    path: str
    label: str
    group: str
    variant: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def read_dataset(data: str | Path, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[LabelledClip]:
    """The labelled clips of a manifest CSV or a folder of label-named sub-folders."""
    data = Path(data)
    if data.is_file() and data.suffix.lower() == ".csv":
        return read_manifest(data)
    if data.is_dir():
        manifest = data / "manifest.csv"
        if manifest.is_file():
            return read_manifest(manifest)
        return read_label_folders(data, extensions)
    raise DatasetError(f"not a manifest CSV or a folder of label-named sub-folders: {data}")


def read_manifest(manifest: Path) -> list[LabelledClip]:
    with open(manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{manifest.name} lacks column(s) {', '.join(sorted(missing))}")
        rows = list(reader)
    clips = []
    for number, row in enumerate(rows, start=2):
        label = (row.get("label") or "").strip()
        if label not in LABELS:
            raise DatasetError(f"{manifest.name} line {number}: unknown label {label!r} (known: {', '.join(LABELS)})")
        path = Path(row["path"])
        if not path.is_absolute():
            path = manifest.parent / path
        extra = {k: v for k, v in row.items() if k not in ("path", "label", "group", "variant") and k}
        clips.append(LabelledClip(
            path=str(path), label=label, group=(row.get("group") or "").strip() or row["path"],
            variant=(row.get("variant") or "").strip(), extra=extra,
        ))
    if not clips:
        raise DatasetError(f"{manifest.name} lists no clips")
    return clips


def read_label_folders(root: Path, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[LabelledClip]:
    suffixes = {e.lower() for e in extensions}
    clips = []
    for label in LABELS:
        folder = root / label
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes):
            relative = path.relative_to(folder)
            group = f"{label}/{relative.parts[0]}" if len(relative.parts) > 1 else f"{label}/{relative.as_posix()}"
            clips.append(LabelledClip(path=str(path), label=label, group=group))
    if not clips:
        raise DatasetError(f"{root} has no video files under sub-folders named {', '.join(LABELS)}")
    return clips

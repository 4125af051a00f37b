"""The moderator's views of a batch: a self-contained HTML evidence report and CSV/JSON
summaries.

The HTML file needs no network (images are data URIs, script and style inline, and a
Content-Security-Policy that forbids loading anything) and escapes every untrusted string
(file names, URLs, error messages, evidence details) through Jinja2's autoescape.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detector.config import LABELS, ScanConfig
from detector.output import describe_evidence
from detector.scan import ScanRecord, is_flagged

TEMPLATE = "report.html.j2"

# Timeline colours by evidence kind (the legend uses the same table).
TIMELINE_KINDS = {
    "loop": ("loop (replayed)", "#d7301f"),
    "loop_source": ("span it repeats", "#fc8d59"),
    "cut": ("cut / edit", "#222222"),
    "static": ("static / idle", "#969696"),
    "no_presenter": ("no presenter", "#3182bd"),
    "other": ("other evidence", "#8856a7"),
}
_STATIC_KINDS = {"static", "idle", "frozen"}


def needs_card(record: ScanRecord, config: ScanConfig) -> bool:
    """A flagged clip gets a card; without a model, so does a clip with loops or flags."""
    if record.error is not None:
        return False
    if record.verdict is None:
        return bool(record.loops or record.flags or record.cuts_s)
    return is_flagged(record, config)


def verdict_name(record: ScanRecord) -> str:
    if record.error is not None:
        return "error"
    return record.verdict or "no verdict"


def _data_uri(image: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(image).decode("ascii")


def _timeline(record: ScanRecord) -> list[dict[str, Any]]:
    """Marks on a 0-100 % strip: loops and the spans they repeat, cuts, still and
    no-presenter stretches, then any other evidence."""
    duration = record.duration_s or 0.0
    if duration <= 0:
        return []
    marks = []

    def mark(kind: str, start: float, end: float, title: str) -> None:
        left = max(0.0, min(100.0, 100.0 * start / duration))
        width = max(0.4, min(100.0 - left, 100.0 * (end - start) / duration))
        marks.append({"kind": kind, "left": round(left, 3), "width": round(width, 3),
                      "colour": TIMELINE_KINDS[kind][1], "title": title})

    for e in record.evidence:
        kind = e["kind"]
        if kind == "loop":
            if e.get("source_start_s") is not None:
                mark("loop_source", e["source_start_s"], e["source_end_s"],
                     f"repeated later at {e['start_s']:.1f}-{e['end_s']:.1f} s")
            mark("loop", e["start_s"], e["end_s"], describe_evidence(e))
        elif kind == "cut":
            if not e.get("detail", {}).get("loop_seam"):
                mark("cut", e["start_s"], e["start_s"], describe_evidence(e))
        elif kind in _STATIC_KINDS:
            mark("static", e["start_s"], e["end_s"], describe_evidence(e))
        elif kind == "no_presenter":
            mark("no_presenter", e["start_s"], e["end_s"], describe_evidence(e))
        elif kind != "recycled_clip":
            mark("other", e["start_s"], e["end_s"], describe_evidence(e))
    order = {"loop_source": 0, "static": 1, "no_presenter": 2, "other": 3, "loop": 4, "cut": 5}
    return sorted(marks, key=lambda m: order[m["kind"]])


def _card(index: int, record: ScanRecord, visuals, config: ScanConfig) -> dict[str, Any]:
    thumb = {}
    if visuals is not None:
        thumb = {t: _data_uri(jpeg, "image/jpeg") for t, jpeg in visuals.thumbs.items()}
    card: dict[str, Any] = {
        "index": index, "record": record, "verdict": verdict_name(record),
        "scores": sorted(record.scores.items(), key=lambda kv: -kv[1]),
        "timeline": _timeline(record), "has_visuals": visuals is not None,
        "overview": [], "spans": [], "cuts": [], "selfsim": None, "face_cues": [],
        "evidence": [describe_evidence(e) for e in record.evidence if e["kind"] != "recycled_clip"][:12],
    }
    if visuals is None:
        return card
    card["overview"] = [{"t": t, "src": thumb[t]} for t in visuals.overview_t if t in thumb]
    for span in visuals.spans:
        card["spans"].append({
            "text": (f"{span['start_s']:.1f}-{span['end_s']:.1f} s repeats "
                     f"{span['source_start_s']:.1f}-{span['source_end_s']:.1f} s"),
            "transform": span.get("transform", "none"), "similarity": span.get("similarity"),
            "pairs": [{"t": a, "src": thumb[a], "source_t": b, "source_src": thumb[b]}
                      for a, b in span["pairs"] if a in thumb and b in thumb],
            "thumb_interval_s": visuals.thumb_interval_s,
        })
    for cut_s, before, after in visuals.cuts:
        if before in thumb and after in thumb:
            card["cuts"].append({"t": cut_s, "before": thumb[before], "after": thumb[after],
                                 "before_t": before, "after_t": after})
    if visuals.selfsim_png:
        card["selfsim"] = {"src": _data_uri(visuals.selfsim_png, "image/png"),
                           "from_s": visuals.selfsim_t_s[0], "to_s": visuals.selfsim_t_s[1]}
    if record.verdict == "ai_driven":
        card["face_cues"] = sorted(visuals.face_cues.items())
    return card


def render_report(records: Sequence[ScanRecord], visuals: Sequence[Any], config: ScanConfig,
                  title: str = "detector report") -> str:
    """The whole report as one HTML string; `visuals[i]` belongs to `records[i]` (or None)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("detector", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    rows = []
    for i, r in enumerate(records):
        rows.append({
            "index": i, "record": r, "verdict": verdict_name(r),
            "flagged": is_flagged(r, config), "card": needs_card(r, config),
            "strongest": r.error or describe_evidence(r.strongest_evidence()),
        })
    cards = [_card(i, r, v, config) for i, (r, v) in enumerate(zip(records, visuals)) if needs_card(r, config)]
    verdicts = Counter(verdict_name(r) for r in records)
    summary = {
        "inputs": len(records),
        "verdicts": [(name, verdicts.get(name, 0)) for name in (*LABELS, "no verdict", "error")],
        "flags": sorted(Counter(f for r in records for f in r.flags).items()),
        "failures": [r for r in records if r.error is not None],
        "flagged": sum(row["flagged"] for row in rows),
        "clip_seconds": sum(r.duration_s or 0.0 for r in records),
        "models": sorted({r.model for r in records if r.model}),
    }
    return env.get_template(TEMPLATE).render(
        title=title, rows=rows, cards=cards, summary=summary, kinds=TIMELINE_KINDS,
        labels=LABELS, generated=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    )


def write_report(path: str | Path, records: Sequence[ScanRecord], visuals: Sequence[Any],
                 config: ScanConfig) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(render_report(records, visuals, config), encoding="utf-8")
    temporary.replace(path)
    return path


def summarize(records: Sequence[ScanRecord], config: ScanConfig, wall_s: float | None = None) -> dict[str, Any]:
    """Counts for dashboards and pipelines: per verdict, per flag, failures, flagged clips."""
    verdicts = Counter(verdict_name(r) for r in records)
    return {
        "inputs": len(records),
        "analysed": sum(r.error is None for r in records),
        "failed": sum(r.error is not None for r in records),
        "flagged": sum(is_flagged(r, config) for r in records),
        "verdicts": {name: verdicts.get(name, 0) for name in (*LABELS, "no verdict", "error")},
        "flags": dict(sorted(Counter(f for r in records for f in r.flags).items())),
        "clip_seconds": round(sum(r.duration_s or 0.0 for r in records), 3),
        "wall_s": None if wall_s is None else round(wall_s, 3),
        "failures": [{"path": r.path, "error": r.error} for r in records if r.error is not None],
        "flagged_clips": [{"path": r.path, "verdict": r.verdict, "confidence": r.confidence}
                          for r in records if is_flagged(r, config)],
    }


def write_summary(path: str | Path, records: Sequence[ScanRecord], config: ScanConfig,
                  wall_s: float | None = None) -> Path:
    """`.json`: the `summarize` object. `.csv`: rows `section,name,count` (totals, verdicts,
    flags), for a spreadsheet."""
    path = Path(path)
    data = summarize(records, config, wall_s)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["section", "name", "count"])
        for key in ("inputs", "analysed", "failed", "flagged", "clip_seconds"):
            writer.writerow(["total", key, data[key]])
        for name, count in data["verdicts"].items():
            writer.writerow(["verdict", name, count])
        for name, count in data["flags"].items():
            writer.writerow(["flag", name, count])
    return path

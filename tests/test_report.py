"""The HTML evidence report: escaping, cards and face cues from records, and the real page in
headless Chromium (cards, thumbnails, filtering, sorting)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_cli
from helpers import prior_model

from detector.config import ScanConfig
from detector.report import render_report
from detector.scan import ScanRecord
from detector.synth.scenes import cut_scene, looped_scene, moving_scene, static_scene
from detector.synth.writer import write_clip
from detector.visuals import ClipVisuals

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<img src=x onerror="alert(1)">'


def test_untrusted_strings_are_escaped_everywhere():
    record = ScanRecord(path=f"/up/{HOSTILE}.mp4", verdict="looped", confidence=0.9,
                        scores={"looped": 0.9, "live": 0.1}, duration_s=10.0, flags=["cuts"],
                        evidence=[{"kind": "cut", "start_s": 2.0, "end_s": 2.0, "score": 0.9,
                                   "source_start_s": None, "source_end_s": None, "detail": {}}],
                        model=HOSTILE)
    broken = ScanRecord(path="</td><script>alert(2)</script>", error="not a readable video: <b>bad</b>")
    html = render_report([record, broken], [None, None], ScanConfig())
    assert HOSTILE not in html and "<script>alert(2)" not in html and "<b>bad</b>" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert html.count('<section class="card"') == 1


def test_ai_driven_card_shows_the_face_cues_and_live_gets_no_card():
    visuals = ClipVisuals(duration_s=20.0, face_cues={"face__mouth_only_share": 0.8, "face__blink_interval_cv": 0.05})
    ai = ScanRecord(path="anchor.mp4", verdict="ai_driven", confidence=0.8, duration_s=20.0)
    live = ScanRecord(path="room.mp4", verdict="live", confidence=0.9, duration_s=20.0)
    html = render_report([ai, live], [visuals, None], ScanConfig())
    assert html.count('<section class="card"') == 1 and 'id="card-0"' in html
    assert "Face cues" in html and "mouth_only_share" in html and "0.8" in html


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    frames, _ = looped_scene(320, 240, 15, 24.0, seed=3, period_s=8.0)
    write_clip(folder / "looped.mp4", frames, 15)
    frames, _ = cut_scene(320, 240, 15, 10.0, seed=4, cut_times_s=[3.0, 6.5])
    write_clip(folder / "cut.mp4", frames, 15)
    write_clip(folder / "static.mp4", static_scene(320, 240, 15, 8.0, seed=2), 15)
    write_clip(folder / f"{HOSTILE}.mp4", moving_scene(320, 240, 15, 4.0, seed=1), 15)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def _browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    return sync_api.sync_playwright()


def test_report_in_headless_chromium(tmp_path, batch_folder):
    model = prior_model(tmp_path, {"looped": 3, "live": 1})     # every clip judged looped (0.75)
    report = tmp_path / "report.html"
    result = run_cli("scan", "-f", "jsonl", "--model", str(model), "--workers", "2", "--report", str(report),
                     str(batch_folder), timeout_s=300)
    assert result.returncode == 2, result.stderr               # broken.mp4 is unreadable
    records = {Path(r["path"]).name: r for r in result.jsonl()}
    assert records["broken.mp4"]["error"]
    looped_loops = records["looped.mp4"]["loops"]
    assert looped_loops, "the looped clip must show a repeated span"

    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            dialogs, requests = [], []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(report.as_uri())

            assert page.locator("#count-inputs").inner_text() == "5"
            assert page.locator("#results tbody tr").count() == 5
            cards = page.locator("section.card")
            assert cards.count() == 4                            # every readable clip is flagged
            # The hostile file name is shown as text, never run.
            assert page.get_by_text(f"{HOSTILE}.mp4", exact=False).count() >= 1
            # Every thumbnail decoded (a data URI that did not load has naturalWidth 0).
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
            assert len(widths) > 20 and min(widths) > 0
            looped = page.locator("section.card", has_text="looped.mp4")
            spans = looped.locator(".span")
            assert spans.count() == len(looped_loops[:4])
            replayed = spans.first.locator(".replayed img").count()
            assert replayed >= 2 and spans.first.locator(".original img").count() == replayed
            assert looped.locator(".timeline span.loop").count() == len(looped_loops)
            assert looped.locator(".selfsim img").count() == 1
            assert page.locator("section.card", has_text="cut.mp4").locator(".timeline span.cut").count() >= 1
            assert page.locator("section.card", has_text="static.mp4").locator(".timeline span.static").count() >= 1

            page.fill("#filter-text", "looped")
            assert page.locator("#results tbody tr:visible").count() == 1
            assert page.locator("section.card:visible").count() == 1
            assert page.locator("#shown-count").inner_text() == "1"
            if os.environ.get("DETECTOR_REPORT_SCREENSHOT"):     # docs/report.png for the README
                page.screenshot(path=os.environ["DETECTOR_REPORT_SCREENSHOT"], full_page=True)
            page.fill("#filter-text", "")
            page.select_option("#filter-verdict", "error")
            visible = page.locator("#results tbody tr:visible")
            assert visible.count() == 1 and "broken.mp4" in visible.inner_text()
            assert page.locator("section.card:visible").count() == 0
            page.select_option("#filter-verdict", "")

            page.click("#results th:nth-child(5)")               # duration, ascending
            page.click("#results th:nth-child(5)")               # descending
            first = page.locator("#results tbody tr").first.inner_text()
            assert "looped.mp4" in first                         # the 24 s clip is the longest
            assert dialogs == [] and requests == []
        finally:
            browser.close()


def test_resumed_clips_keep_their_thumbnails(tmp_path, batch_folder):
    out, report = tmp_path / "r.jsonl", tmp_path / "report.html"
    looped = str(batch_folder / "looped.mp4")
    first = run_cli("scan", "--model", "none", "--output", str(out), "--report", str(report), looped)
    assert first.returncode == 0, first.stderr
    second = run_cli("scan", "--model", "none", "--output", str(out), "--resume", "--report", str(report),
                     looped, str(batch_folder / "static.mp4"))
    assert second.returncode == 0, second.stderr
    html = report.read_text(encoding="utf-8")
    assert html.count('<section class="card"') == 2
    assert "scanned without --report" not in html
    assert html.count("data:image/jpeg;base64,") > 10


def test_thumbnail_strip_stays_bounded_and_covers_a_long_clip():
    """One pass over a 20-minute clip keeps at most the capped counts, spread over all of it."""
    import numpy as np

    from detector.scan import ScanRecord
    from detector.types import Frame
    from detector.visuals import ThumbnailCollector, VisualSettings, select_visuals

    settings = VisualSettings()
    collector = ThumbnailCollector(settings=settings)
    collector.reset(None)
    rng = np.random.default_rng(0)
    duration = 1200.0
    for i, t in enumerate(np.arange(0.0, duration, 0.5)):
        collector.update(Frame(index=i, t_s=float(t), gray=rng.integers(0, 255, (18, 32), dtype=np.uint8)))
    thumbs, descriptors = collector.thumbs.times, collector.descriptors.times
    assert settings.max_thumbs // 2 <= len(thumbs) <= settings.max_thumbs
    assert len(descriptors) <= settings.max_sim
    assert thumbs[0] == 0.0 and thumbs[-1] > duration - 2 * collector.thumbs.interval_s
    assert max(np.diff(thumbs)) <= collector.thumbs.interval_s + 1e-9          # evenly spread

    loop = {"start_s": 600.0, "end_s": 700.0, "source_start_s": 100.0, "source_end_s": 200.0,
            "similarity": 0.9, "transform": "none"}
    record = ScanRecord(path="long.mp4", duration_s=duration, loops=[loop], cuts_s=[300.0])
    visuals = select_visuals(collector, record)
    (span,) = visuals.spans
    assert len(span["pairs"]) == settings.span_count
    for replayed_t, source_t in span["pairs"]:       # the nearest kept thumbnails, in the spans
        assert 600.0 - 10 <= replayed_t <= 700.0 + 10 and 100.0 - 10 <= source_t <= 200.0 + 10
        assert replayed_t - source_t == pytest.approx(500.0, abs=10)
    assert len(visuals.cuts) == 1 and visuals.selfsim_png.startswith(b"\x89PNG")
    assert len(visuals.thumbs) <= settings.overview_count + 2 * settings.span_count + 2


def test_a_span_too_short_for_sparse_thumbnails_shows_a_note_not_wrong_pictures():
    import numpy as np

    from detector.types import Frame
    from detector.visuals import ThumbnailCollector, VisualSettings, select_visuals

    collector = ThumbnailCollector(settings=VisualSettings(max_thumbs=20))
    collector.reset(None)
    for i, t in enumerate(np.arange(0.0, 200.0, 0.5)):
        collector.update(Frame(index=i, t_s=float(t), gray=np.full((18, 32), i % 250, dtype=np.uint8)))
    assert collector.thumbs.interval_s >= 8
    loop = {"start_s": 53.0, "end_s": 57.0, "source_start_s": 13.0, "source_end_s": 17.0,
            "similarity": 0.9, "transform": "none"}
    record = ScanRecord(path="long.mp4", verdict="looped", confidence=0.9, duration_s=200.0, loops=[loop])
    visuals = select_visuals(collector, record)
    assert visuals.spans[0]["pairs"] == []
    html = render_report([record], [visuals], ScanConfig())
    assert "No thumbnails close enough to this span" in html

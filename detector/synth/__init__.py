"""Synthetic test media for the detector.

``detector.synth.writer`` writes clips (video, audio, images) with PyAV, since
no ffmpeg command-line tool is assumed to exist; ``detector.synth.scenes``
generates small deterministic procedural scenes (live-looking, static, cut,
looped) as streams of BGR frames with their ground truth.

Nothing is imported here so that importing the package stays cheap.
"""

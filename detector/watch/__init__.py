"""`detector watch`: analyse a live room while it is on air.

- `ingest`: reader threads, reconnects with backoff, a watchdog, one stream clock;
- `loops`: fingerprints of the recent past in a fixed ring, searched for replays now and then;
- `windows`: the scan's extractors over rolling windows, scored by the model;
- `session`: the events (JSON lines) and the final summary;
- `status`: the status line on a terminal.
"""

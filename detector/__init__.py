"""detector: tells whether a live-stream room is really live.

Importing the package is cheap: nothing here loads OpenCV, PyAV or a model. Use
`detector.pipeline.extract` for features and `detector.scan.scan_one` for a full record.
"""

__version__ = "0.1.0"

"""The HTTP surface: one router per resource (``routes/``) over typed dependencies (``deps.py``)."""

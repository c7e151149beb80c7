"""The hard routing filters: the service's policy applies them, training's rep-fit learner measures
history against them (a mismatch there is what the learned penalties price)."""

from __future__ import annotations

MAX_TIMEZONE_GAP_HOURS = 3.0
MIN_LANGUAGE_PROFICIENCY = 0.8

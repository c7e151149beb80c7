"""Send fired rules to a chat-bot webhook (WeCom / DingTalk text format), with retries and back-off."""

from __future__ import annotations

import logging
import time

import httpx

from service.rules import Firing

log = logging.getLogger("funnelcast.webhook")


def alert_text(firings: list[Firing]) -> str:
    lines = [f"funnelcast: {len(firings)} alert(s)"]
    for f in firings[:20]:
        evidence = ", ".join(f"{k}={v}" for k, v in f.evidence.items())
        lines.append(f"[{f.severity}] {f.rule} {f.entity}: {f.action} ({evidence})")
    if len(firings) > 20:
        lines.append(f"... and {len(firings) - 20} more (GET /v1/alerts)")
    return "\n".join(lines)


def send_alerts(url: str, firings: list[Firing], retries: int = 3, backoff_seconds: float = 0.5) -> bool:
    """POST one text message; retry on network errors and 5xx/429 with exponential back-off."""
    if not firings:
        return True
    # WeCom and DingTalk bots both accept {"msgtype": "text", "text": {"content": ...}}
    body = {"msgtype": "text", "text": {"content": alert_text(firings)}}
    for attempt in range(1, retries + 1):
        try:
            response = httpx.post(url, json=body, timeout=5.0)
            if response.status_code < 400:
                return True
            retryable = response.status_code >= 500 or response.status_code == 429
            log.warning("webhook answered %s (attempt %d/%d)", response.status_code, attempt, retries)
            if not retryable:
                return False
        except httpx.HTTPError as err:
            log.warning("webhook failed (attempt %d/%d): %s", attempt, retries, type(err).__name__)
        if attempt < retries:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
    return False

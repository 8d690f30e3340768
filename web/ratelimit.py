"""Per-client request budget for the public pages (a token bucket per client address, refilled continuously)."""
from __future__ import annotations

import math
import threading
import time

from fastapi import HTTPException, Request

MAX_CLIENTS = 10_000  # addresses remembered; beyond it the idlest half is forgotten (they had a full bucket anyway)


class RateLimit:
    def __init__(self, per_minute: int, *, burst: int | None = None, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, per_minute // 3))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> float:
        """0 and one token spent when the client may go on; else how long until it may."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                if len(self._buckets) > MAX_CLIENTS:
                    for key, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[: MAX_CLIENTS // 2]:
                        del self._buckets[key]
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate if self.rate else math.inf


def limited(request: Request) -> None:
    """FastAPI dependency: 429 with Retry-After once the client's budget is spent."""
    limit: RateLimit = request.app.state.verify_rate_limit
    client = request.client.host if request.client else "?"
    wait = limit.wait_seconds(client)
    if wait:
        raise HTTPException(429, "Too many verification requests from your address; try again in a minute.",
                            headers={"Retry-After": str(max(1, math.ceil(min(wait, 3600))))})

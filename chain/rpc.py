"""A narrow JSON-RPC client: only what the signer and the consumer use, with batching.

Real providers bill per call and rate-limit, and any one of them can be down or point at the wrong chain:
- several endpoints (`BLOCKPROOF_RPC_URLS`): each request goes to the healthiest one (`pick_endpoint`); a failed
  or rate-limited endpoint is skipped for a while and the next one answers;
- HTTP 429: the endpoint is not asked again before its `Retry-After` (seconds or an HTTP date);
- chain identity (`BLOCKPROOF_CHAIN_ID`): an endpoint is asked `eth_chainId` before its first use and again after
  every failure (the node behind a URL may have been replaced); another chain raises WrongChain, every time, so
  nothing is sent or read from it. The check is shared by every client of the process for that URL, and runs
  again every CHAIN_RECHECK_SECONDS and after an answer that mentions a chain id (the node behind a URL may
  change without a failed request: a pooled connection is re-opened silently)."""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Callable, Sequence

import requests

from blockproof.errors import ConfigurationError, RpcError, RpcUnavailable

if TYPE_CHECKING:
    from blockproof.settings import Settings

RATE_LIMIT_DEFAULT_SECONDS = 1.0  # a 429 without Retry-After
RATE_LIMIT_MAX_SECONDS = 60.0
FAILURE_COOLDOWN_SECONDS = 2.0  # doubled per consecutive failure, up to 30 s
FAILURE_COOLDOWN_MAX_SECONDS = 30.0
CHAIN_RECHECK_SECONDS = 30.0

_checked_at: dict[tuple[str, int], float] = {}  # (url, expected chain) → when it last served the expected chain
_checked_lock = threading.Lock()


def _forget_chain_checks(url: str | None = None) -> None:
    with _checked_lock:
        for key in [k for k in _checked_at if url is None or k[0] == url]:
            del _checked_at[key]


class WrongChain(ConfigurationError):
    """The node serves another chain than BLOCKPROOF_CHAIN_ID: nothing may be signed for, sent to or read from it."""


class RateLimited(RpcUnavailable):
    """HTTP 429 from every endpoint; `retry_after` seconds until the first may be asked again."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def wrong_chain_message(url: str, served: int, expected: int | None) -> str | None:
    if expected is None or served == expected:
        return None
    return f"the node at {url} serves chain {served}; expected {expected} (BLOCKPROOF_CHAIN_ID)"


def retry_after_seconds(header: str | None, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), bounded."""
    if not header:
        return RATE_LIMIT_DEFAULT_SECONDS
    header = header.strip()
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(header).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError):
            seconds = RATE_LIMIT_DEFAULT_SECONDS
    return min(max(seconds, 0.0), RATE_LIMIT_MAX_SECONDS)


@dataclass
class Endpoint:
    url: str
    not_before: float = 0.0  # monotonic time before which it is not asked (rate limit, failure)
    failures: int = 0  # consecutive
    successes: int = 0
    errors: int = 0
    latency: float = 0.0  # moving average, seconds

    @property
    def label(self) -> str:
        """The URL without a path or query: provider URLs often carry the API key there."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "") + \
            ("/…" if parts.path.strip("/") or parts.query else "")


def pick_endpoint(endpoints: Sequence[Endpoint], now: float) -> tuple[int | None, float]:
    """(index of the endpoint to ask, 0) or (None, seconds until one may be asked). Healthy first, then the
    fewest consecutive failures, then the lowest latency bucket, then the configured order."""
    ready = [i for i, e in enumerate(endpoints) if e.not_before <= now]
    if not ready:
        return None, min(e.not_before for e in endpoints) - now
    return min(ready, key=lambda i: (endpoints[i].failures, round(endpoints[i].latency, 1), i)), 0.0


def split_urls(urls: str) -> list[str]:
    return [u.strip() for u in urls.replace("\n", ",").split(",") if u.strip()]


class Rpc:
    def __init__(self, url: str | Sequence[str], timeout: float = 10.0, *, expected_chain_id: int | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 max_wait: float = RATE_LIMIT_MAX_SECONDS):
        urls = split_urls(url) if isinstance(url, str) else list(url)
        if not urls:
            raise ConfigurationError("no JSON-RPC endpoint configured (BLOCKPROOF_RPC_URL or BLOCKPROOF_RPC_URLS)")
        self.endpoints = [Endpoint(u) for u in urls]
        self.timeout = timeout
        self.expected_chain_id = expected_chain_id
        self.clock, self.sleep, self.max_wait = clock, sleep, max_wait
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings, timeout: float | None = None) -> "Rpc":
        """The endpoints, timeout and expected chain of the settings."""
        urls = split_urls(getattr(settings, "rpc_urls", "") or "") or [settings.rpc_url]
        return cls(urls, settings.rpc_timeout_seconds if timeout is None else timeout,
                   expected_chain_id=getattr(settings, "chain_id", None))

    @property
    def url(self) -> str:
        return self.endpoints[0].url

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    # ---- one HTTP exchange with one endpoint --------------------------------------------
    def _exchange(self, endpoint: Endpoint, payload: Any) -> Any:
        started = self.clock()
        try:
            response = self._session.post(endpoint.url, json=payload, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RpcUnavailable(f"RPC node at {endpoint.label} did not answer: {exc.__class__.__name__}") from exc
        if response.status_code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise RateLimited(f"RPC node at {endpoint.label} rate-limited this client (HTTP 429, retry after "
                              f"{wait:.0f} s)", wait)
        if response.status_code >= 500 or not response.content:
            raise RpcUnavailable(f"RPC node at {endpoint.label} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise RpcUnavailable(f"RPC node at {endpoint.label} answered something that is not JSON") from exc
        endpoint.latency = 0.8 * endpoint.latency + 0.2 * (self.clock() - started) if endpoint.successes else \
            self.clock() - started
        return body

    def _verify(self, endpoint: Endpoint) -> None:
        if self.expected_chain_id is None:
            return
        key = (endpoint.url, self.expected_chain_id)
        with _checked_lock:
            at = _checked_at.get(key)
        if at is not None and self.clock() - at < CHAIN_RECHECK_SECONDS:
            return
        reply = self._exchange(endpoint, {"jsonrpc": "2.0", "id": next(self._ids), "method": "eth_chainId",
                                          "params": []})
        if isinstance(reply, list):
            reply = reply[0]
        served = int(self._unwrap("eth_chainId", reply), 16)
        message = wrong_chain_message(endpoint.label, served, self.expected_chain_id)
        if message:
            raise WrongChain(message)
        with _checked_lock:
            _checked_at[key] = self.clock()

    def _post(self, payload: Any) -> Any:
        """Send to the best endpoint; on failure or rate limit, to the next one. Raises the last failure when
        every endpoint failed in this round."""
        tried: set[int] = set()
        last: RpcUnavailable | None = None
        while True:
            with self._lock:
                index, wait = pick_endpoint([e if i not in tried else _TRIED for i, e in enumerate(self.endpoints)],
                                            self.clock())
            if index is None:
                if last is not None:  # set with each endpoint tried
                    raise last
                if wait > self.max_wait:
                    raise RateLimited(f"every RPC endpoint is rate-limited or failing for {wait:.0f} s more", wait)
                self.sleep(wait)  # honour Retry-After: nothing is sent before it
                continue
            endpoint = self.endpoints[index]
            try:
                self._verify(endpoint)
                reply = self._exchange(endpoint, payload)
            except RpcUnavailable as exc:
                with self._lock:
                    self._failed(endpoint, exc)
                tried.add(index)
                last = exc
                continue
            with self._lock:
                endpoint.failures, endpoint.successes = 0, endpoint.successes + 1
            return reply

    def _failed(self, endpoint: Endpoint, exc: RpcUnavailable) -> None:
        _forget_chain_checks(endpoint.url)
        endpoint.errors += 1
        if isinstance(exc, RateLimited):
            endpoint.not_before = self.clock() + exc.retry_after
            return
        endpoint.failures += 1
        if len(self.endpoints) > 1:  # alone, it is asked again at once: the callers have their own backoff
            endpoint.not_before = self.clock() + min(FAILURE_COOLDOWN_SECONDS * 2 ** (endpoint.failures - 1),
                                                     FAILURE_COOLDOWN_MAX_SECONDS)

    def health(self) -> list[dict[str, Any]]:
        """Per endpoint, for status and metrics (URLs without their path, which may hold a key)."""
        now = self.clock()
        return [{"endpoint": e.label, "healthy": e.not_before <= now and not e.failures, "errors": e.errors,
                 "successes": e.successes, "latency_ms": round(e.latency * 1000, 1)} for e in self.endpoints]

    @staticmethod
    def _unwrap(method: str, reply: dict[str, Any]) -> Any:
        if "error" in reply and reply["error"] is not None:
            err = reply["error"]
            if "chain id" in str(err.get("message", "")).lower():  # e.g. "invalid chain id for signer"
                _forget_chain_checks()
            raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"), method)
        return reply.get("result")

    def call(self, method: str, *params: Any) -> Any:
        reply = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        if isinstance(reply, list):  # some proxies always batch
            reply = reply[0]
        return self._unwrap(method, reply)

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any | RpcError]:
        """Many requests in one HTTP round trip; each result is a value or an RpcError (not raised)."""
        if not calls:
            return []
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": list(params)}
            for i, (method, params) in enumerate(calls)
        ]
        replies = self._post(payload)
        if isinstance(replies, dict):  # a node that refuses batches answers one error
            raise RpcError(replies.get("error", {}).get("code", 0), str(replies.get("error")), None, "batch")
        by_id = {r.get("id"): r for r in replies}
        out: list[Any | RpcError] = []
        for i, (method, _) in enumerate(calls):
            try:
                out.append(self._unwrap(method, by_id.get(i, {"error": {"code": -1, "message": "no reply"}})))
            except RpcError as exc:
                out.append(exc)
        return out

    # conveniences
    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def nonce(self, address: str, block: str = "latest") -> int:
        return int(self.call("eth_getTransactionCount", address, block), 16)

    def balance(self, address: str) -> int:
        return int(self.call("eth_getBalance", address, "latest"), 16)

    def get_block(self, number: int | str, full: bool = False) -> dict[str, Any] | None:
        tag = hex(number) if isinstance(number, int) else number
        block: dict[str, Any] | None = self.call("eth_getBlockByNumber", tag, full)
        return block


_TRIED = Endpoint("", not_before=float("inf"))  # stands in for an endpoint already tried in this round


def refuse_wrong_chain(rpc: Rpc) -> int | None:
    """At start-up: WrongChain when the node serves another chain; None when no node answers yet (the caller
    starts anyway and reports the outage; the check runs again before the first request that reaches one)."""
    try:
        return rpc.chain_id()
    except (RpcUnavailable, RpcError):
        return None

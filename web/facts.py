"""Facts the web process fetches from the chain and from RabbitMQ for the panels and /metrics: cached for a few
seconds so that polling tabs and scrapes cost one round trip, and never raising (a panel says what failed)."""
from __future__ import annotations

import threading
import time
import urllib.parse

import httpx

from chain.rpc import Rpc
from blockproof.settings import Settings

# gas per credential when this database has no mined transaction yet: an issueCredentialBatch of 100 with
# shared-directory URIs (bench/results/gas.md)
DEFAULT_GAS_PER_CREDENTIAL = 122_880


class Cached:
    def __init__(self, ttl: float, fetch):
        self.ttl, self.fetch = ttl, fetch
        self._value, self._at = None, 0.0
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if time.monotonic() - self._at > self.ttl:
                self._value, self._at = self.fetch(), time.monotonic()
            return self._value


class Facts:
    def __init__(self, settings: Settings, rpc: Rpc, engine=None):
        self.settings, self.rpc, self.engine = settings, rpc, engine
        self.chain = Cached(3.0, self._chain)
        self.queues = Cached(2.0, self._queues)
        self.health = Cached(3.0, self._health)
        self.heartbeats = Cached(3.0, self._heartbeats)
        self._management_down_until = 0.0

    # ---- reachability and heartbeats (checking them raises or resolves the stale_heartbeat alerts) ------------
    def _health(self) -> dict:
        from blockproof import health

        chain, queues = self.chain.get(), self.queues.get()
        database = health.probe_database(self.settings.database_url)
        components = {
            "node": {"ok": chain["error"] is None,
                     "detail": f"block {chain['head']}" if chain["error"] is None else chain["error"]},
            "broker": {"ok": queues["error"] is None, "detail": queues["error"] or "answers"},
            "database": {"ok": database.ok, "detail": database.detail}}
        for c in components.values():
            c["state"] = "reachable" if c["ok"] else "UNREACHABLE"
        beats = self.heartbeats.get()
        return {"components": components, "heartbeats": beats,
                "ok": all(c["ok"] for c in components.values()) and not any(b["stale"] for b in beats)}

    def _heartbeats(self) -> list[dict]:
        from blockproof import health

        return health.watch(self.engine, self.settings.heartbeat_stale_seconds) if self.engine is not None else []

    # ---- chain -------------------------------------------------------------------------------
    def _chain(self) -> dict:
        try:
            gas_price, head = self.rpc.batch([("eth_gasPrice", []), ("eth_blockNumber", [])])
            return {"gas_price_wei": int(gas_price, 16), "head": int(head, 16), "error": None}
        except Exception as exc:  # the panel shows it; the page still renders
            return {"gas_price_wei": None, "head": None, "error": f"chain unreachable: {exc}"}

    def chain_nonce(self, address: str) -> int | None:
        try:
            return int(self.rpc.call("eth_getTransactionCount", address, "latest"), 16)
        except Exception:
            return None

    # ---- RabbitMQ ----------------------------------------------------------------------------
    def _queues(self) -> dict:
        name = self.settings.queue_name
        data = self._management(name)
        if data is not None:
            return data
        try:
            from workers.broker import queue_depths

            depths = queue_depths(name, self.settings.broker_url)
            return {"source": "passive declare", "error": None, "queues": [
                {"name": name, "role": "work", "ready": depths.get("ready", 0), "unacked": None,
                 "consumers": depths.get("consumers", 0)},
                {"name": f"{name}.DQ", "role": "delayed", "ready": depths.get("delayed", 0), "unacked": None,
                 "consumers": None},
                {"name": f"{name}.XQ", "role": "dead-letter", "ready": depths.get("dead", 0), "unacked": None,
                 "consumers": None}]}
        except Exception as exc:
            return {"source": None, "error": f"RabbitMQ unreachable: {exc.__class__.__name__}: {exc}", "queues": []}

    def _management(self, name: str) -> dict | None:
        """Ready / unacked / consumers / rates from the management API, when it answers."""
        if time.monotonic() < self._management_down_until:
            return None
        broker = urllib.parse.urlparse(self.settings.broker_url)
        vhost = urllib.parse.unquote(broker.path[1:] if broker.path else "") or "/"
        auth = (urllib.parse.unquote(broker.username or "guest"), urllib.parse.unquote(broker.password or "guest"))
        base = self.settings.rabbitmq_management_url.rstrip("/")
        out = []
        try:
            with httpx.Client(timeout=1.0, auth=auth) as client:
                for queue, role in ((name, "work"), (f"{name}.DQ", "delayed"), (f"{name}.XQ", "dead-letter")):
                    r = client.get(f"{base}/api/queues/{urllib.parse.quote(vhost, safe='')}/"
                                   f"{urllib.parse.quote(queue, safe='')}")
                    if r.status_code == 404:
                        out.append({"name": queue, "role": role, "ready": 0, "unacked": 0, "consumers": 0})
                        continue
                    r.raise_for_status()
                    q = r.json()
                    stats = q.get("message_stats") or {}
                    out.append({"name": queue, "role": role, "ready": q.get("messages_ready", 0),
                                "unacked": q.get("messages_unacknowledged", 0), "consumers": q.get("consumers", 0),
                                "publish_rate": (stats.get("publish_details") or {}).get("rate"),
                                "ack_rate": (stats.get("ack_details") or {}).get("rate")})
        except Exception:
            self._management_down_until = time.monotonic() + 60
            return None
        return {"source": "management API", "error": None, "queues": out}

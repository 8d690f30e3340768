"""Is each part up right now? Live probes of the node, the broker and the database, and how old each worker's
last report is. Shared by `blockproof status`, the UI's overview and /metrics.

A worker reports by writing to the database: the signer its `heartbeat_at` (every loop step that reached the
node), the consumer its checkpoint's `updated_at` (every poll). A report older than
`heartbeat_stale_seconds` raises a `stale_heartbeat` alert, which resolves by itself once a fresh one comes."""
from __future__ import annotations

import urllib.parse
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from sqlalchemy import select, text
from sqlmodel import Session

from models.alerts import raise_alert, resolve_alerts
from models.states import utcnow
from models.tables import ConsumerCheckpoint, SignerState

STALE_HEARTBEAT = "stale_heartbeat"
PROBE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Probe:
    component: str  # node | broker | database
    ok: bool
    detail: str  # what answered ("block 1234") or what went wrong, on one line
    target: str  # where it looked, credentials removed

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Heartbeat:
    component: str  # signer | consumer
    subject: str  # the signer's address, or the consumer's checkpoint name
    at: datetime | None

    def age_seconds(self, now: datetime) -> float | None:
        if self.at is None:
            return None
        at = self.at if self.at.tzinfo else self.at.replace(tzinfo=timezone.utc)
        return max(0.0, (now - at).total_seconds())

    @property
    def name(self) -> str:
        return f"{self.component} {self.subject}" if self.component == "signer" else self.component


# ---- decisions (pure) ------------------------------------------------------------------------------------
def is_stale(beat: Heartbeat, now: datetime, threshold_seconds: float) -> bool:
    age = beat.age_seconds(now)
    return age is not None and age > threshold_seconds


def age_text(seconds: float | None) -> str:
    """'3 s ago', '4 min ago', '2 h ago', or 'never'."""
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


def stale_message(beat: Heartbeat, age: float, threshold_seconds: float) -> str:
    what = "`blockproof signer`" if beat.component == "signer" else "`blockproof consumer`"
    return (f"The {beat.name} last reported {age_text(age)} (more than {threshold_seconds:.0f} s): {what} is "
            f"stopped, or cannot reach the node or the database.")


def redact_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# ---- adapters --------------------------------------------------------------------------------------------
def probe_node(url: str) -> Probe:
    from chain.rpc import Endpoint, Rpc

    target = Endpoint(url).label  # a provider's URL path may hold its API key
    try:
        head = Rpc(url, PROBE_TIMEOUT_SECONDS).block_number()
        return Probe("node", True, f"block {head}", target)
    except Exception as exc:  # any failure is "unreachable", said in one line
        return Probe("node", False, _one_line(exc), target)


def probe_broker(url: str) -> Probe:
    from workers.broker import broker_problem

    problem = broker_problem(url)
    return Probe("broker", problem is None, _one_line(problem) if problem else "answers", redact_url(url))


def probe_database(url: str) -> Probe:
    from sqlalchemy import create_engine

    if url.startswith("sqlite"):
        from pathlib import Path

        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not Path(path).exists():
            return Probe("database", False, f"no database file at {path}", url)
        args = {"timeout": PROBE_TIMEOUT_SECONDS}
    else:
        args = {"connect_timeout": int(PROBE_TIMEOUT_SECONDS)}
    engine = create_engine(url, connect_args=args, poolclass=_null_pool())
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return Probe("database", True, "answers", redact_url(url))
    except Exception as exc:
        return Probe("database", False, _one_line(exc), redact_url(url))
    finally:
        engine.dispose()


def probe_all(settings) -> list[Probe]:
    from chain.rpc import split_urls

    nodes = split_urls(getattr(settings, "rpc_urls", "") or "") or [settings.rpc_url]
    return [probe_node(nodes[0]), probe_broker(settings.broker_url), probe_database(settings.database_url)]


def heartbeats(session: Session) -> list[Heartbeat]:
    beats = [Heartbeat("signer", s.address, s.heartbeat_at)
             for s in session.execute(select(SignerState).order_by(SignerState.address)).scalars()]
    beats += [Heartbeat("consumer", cp.name, cp.updated_at)
              for cp in session.execute(select(ConsumerCheckpoint).order_by(ConsumerCheckpoint.name)).scalars()]
    return beats


def liveness(beats: list[Heartbeat], component: str, now: datetime, threshold_seconds: float,
             subject: str = "") -> tuple[bool, str]:
    """For a container healthcheck: is this worker reporting? (ok, one line)."""
    mine = [b for b in beats if b.component == component and (not subject or b.subject.lower() == subject.lower())]
    if not mine or all(b.at is None for b in mine):
        return False, f"{component}: no report yet"
    beat = min(mine, key=lambda b: b.age_seconds(now) if b.at else float("inf"))
    age = beat.age_seconds(now)
    if age > threshold_seconds:
        return False, stale_message(beat, age, threshold_seconds)
    return True, f"{beat.name}: last report {age_text(age)}"


def check_heartbeats(session: Session, threshold_seconds: float, now: datetime | None = None) -> list[dict]:
    """Raise or resolve the stale_heartbeat alert of every worker; return each heartbeat with its age."""
    now = now or utcnow()
    out = []
    for beat in heartbeats(session):
        age = beat.age_seconds(now)
        stale = is_stale(beat, now, threshold_seconds)
        if stale:
            raise_alert(session, STALE_HEARTBEAT, beat.name, stale_message(beat, age, threshold_seconds))
        else:
            resolve_alerts(session, STALE_HEARTBEAT, beat.name)
        out.append({"component": beat.component, "subject": beat.subject, "age_seconds": age,
                    "age": age_text(age), "stale": stale})
    return out


def watch(engine, threshold_seconds: float) -> list[dict]:
    """check_heartbeats in its own transaction; never raises (a page must render while the database is away)."""
    from models.db import session_scope

    try:
        with session_scope(engine) as s:
            return check_heartbeats(s, threshold_seconds)
    except Exception:
        return []


def _one_line(value) -> str:
    text_ = f"{value.__class__.__name__}: {value}" if isinstance(value, BaseException) else str(value)
    return " ".join(text_.split())[:300]


def _null_pool():
    from sqlalchemy.pool import NullPool

    return NullPool

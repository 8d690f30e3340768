"""Logging for every `blockproof` process: one line per event a person acts on.

A broker outage makes pika and dramatiq's consumers log a dozen errors and tracebacks per reconnect attempt. Here
they become ONE warning when the broker is first lost and ONE info line when a connection succeeds again; the
library's own records, tracebacks included, are kept at debug level (`blockproof -v …`)."""
from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from datetime import datetime

# loggers whose warnings and errors all mean "the connection to RabbitMQ failed"
BROKER_LOGGERS = ("pika", "dramatiq.worker.ConsumerThread", "dramatiq.broker.RabbitmqBroker", "dramatiq.brokers.rabbitmq")
RECONNECTED = ("Connection workflow succeeded",)  # pika.adapters.blocking_connection, at info level
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class Outage:
    """Whether a dependency is down, and the one line to say when that changes (pure; inject `clock`)."""

    def __init__(self, what: str, clock=time.monotonic, wall=datetime.now):
        self.what, self.clock, self.wall = what, clock, wall
        self.down_since: float | None = None
        self.down_at = ""

    def failed(self, reason: str) -> str | None:
        if self.down_since is not None:
            return None
        self.down_since, self.down_at = self.clock(), self.wall().strftime("%H:%M:%S")
        return f"{self.what} unreachable ({reason}) (details: -v)"

    def recovered(self) -> str | None:
        if self.down_since is None:
            return None
        seconds, self.down_since = self.clock() - self.down_since, None
        return f"{self.what} reachable again after {seconds:.0f} s (down since {self.down_at})"


def connection_reason(message: str) -> str:
    """A few words for what pika said, without socket reprs or exception chains."""
    text = message.lower()
    for needle, words in (("refused", "connection refused"), ("timed out", "timed out"), ("timeout", "timed out"),
                          ("reset", "connection reset"), ("eof", "connection lost"), ("lost", "connection lost"),
                          ("access_refused", "access refused"), ("name or service", "host not found")):
        if needle in text:
            return words
    return " ".join(message.split())[:80]


class BrokerOutageFilter(logging.Filter):
    """On the handler: folds the broker libraries' records into Outage lines; keeps them all when verbose."""

    def __init__(self, what: str, *, verbose: bool):
        super().__init__()
        self.outage = Outage(what)
        self.verbose = verbose
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(BROKER_LOGGERS):
            return True
        with self.lock:
            if record.levelno >= logging.WARNING:
                line = self.outage.failed(connection_reason(record.getMessage()))
                level = logging.WARNING
            elif record.getMessage().startswith(RECONNECTED):
                line, level = self.outage.recovered(), logging.INFO
            else:
                line = None
        if line is None:
            return self.verbose
        if self.verbose:  # the library's record as it is, and ours after it
            logging.getLogger("blockproof.broker").log(level, line)
            return True
        record.name, record.msg, record.args = "blockproof.broker", line, ()
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def broker_label(url: str) -> str:
    """'RabbitMQ at host:port', never with the password."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    return f"RabbitMQ at {parts.hostname}:{parts.port or 5672}"


# what a log line is about, for BLOCKPROOF_LOG_FORMAT=json: passed with `extra=`, or found in the message
CONTEXT_FIELDS = ("job", "jobs", "batch", "nonce", "tx_hash")
_IN_MESSAGE = {
    "job": re.compile(r"\bjob (\d+)\b"),
    "batch": re.compile(r"\bbatch (\d+)\b"),
    "nonce": re.compile(r"\bnonce (\d+)\b"),
    "tx_hash": re.compile(r"\b(?:tx|transaction|replacement|hash)[ =:]+(0x[0-9a-fA-F]{64})\b"),
}


def known_fields(message: str, extras: dict) -> dict:
    """Job, batch, nonce and transaction hash of a log line: given ones first, then those its message names."""
    out = {k: extras[k] for k in CONTEXT_FIELDS if extras.get(k) is not None}
    for name, pattern in _IN_MESSAGE.items():
        if name not in out and (found := pattern.search(message)):
            out[name] = int(found.group(1)) if found.group(1).isdigit() else found.group(1)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the known fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry = {"time": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": message}
        entry |= known_fields(message, record.__dict__)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(*, verbose: bool, broker_url: str | None = None, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(FORMAT))
    handler.addFilter(BrokerOutageFilter(broker_label(broker_url) if broker_url else "RabbitMQ", verbose=verbose))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # pika at info: its "Connection workflow succeeded" is how a reconnect is seen (the filter hides the rest)
    logging.getLogger("pika").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose else logging.WARNING)

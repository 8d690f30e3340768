"""The dramatiq broker on RabbitMQ: durable queues, persistent messages, publisher confirms."""
from __future__ import annotations

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from blockproof.settings import get_settings
from workers.middleware import MarkJobsDead, RepublishStalled

_broker: RabbitmqBroker | None = None


class Broker(RabbitmqBroker):
    """Declares its queues (the queue, its delay and dead-letter queues) as quorum queues when asked: RabbitMQ 4
    has no mirrored classic queues, so a replicated broker needs them. An existing queue keeps its type
    (RabbitMQ refuses to redeclare it with another): change the type on a new queue name."""

    def __init__(self, *args, queue_type: str = "classic", **kwargs):
        self.queue_type = queue_type
        super().__init__(*args, **kwargs)

    def _typed(self, arguments: dict) -> dict:
        return arguments | {"x-queue-type": "quorum"} if self.queue_type == "quorum" else arguments

    def _build_queue_arguments(self, queue_name):
        return self._typed(super()._build_queue_arguments(queue_name))

    def _declare_xq_queue(self, queue_name):
        from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL
        from dramatiq.common import xq_name

        return self.channel.queue_declare(queue=xq_name(queue_name), durable=True,
                                          arguments=self._typed({"x-message-ttl": DEAD_MESSAGE_TTL}))


def get_broker() -> RabbitmqBroker:
    global _broker
    if _broker is None:
        settings = get_settings()
        # dramatiq runs after_* hooks in REVERSE order: MarkJobsDead must come before Retries in this list
        # so that it runs after Retries has decided (message.failed) that the message is dead.
        middleware = [AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), RepublishStalled(),
                      MarkJobsDead(),
                      Retries(min_backoff=int(settings.retry_backoff_seconds * 1000),
                              max_backoff=int(settings.retry_backoff_max_seconds * 1000))]
        _broker = Broker(url=settings.broker_url, confirm_delivery=True, middleware=middleware,
                         queue_type=settings.broker_queue_type)
        dramatiq.set_broker(_broker)
    return _broker


def queue_depths(queue_name: str, url: str | None = None) -> dict[str, int]:
    """Ready messages in the queue, its delay queue and its dead-letter queue (passive declare)."""
    import pika

    params = pika.URLParameters(url or get_settings().broker_url)
    params.socket_timeout = 3
    params.blocked_connection_timeout = 3
    out = {}
    connection = pika.BlockingConnection(params)
    try:
        for label, name in (("ready", queue_name), ("delayed", f"{queue_name}.DQ"), ("dead", f"{queue_name}.XQ")):
            channel = connection.channel()
            try:
                frame = channel.queue_declare(name, passive=True)
                out[label] = frame.method.message_count
                if label == "ready":
                    out["consumers"] = frame.method.consumer_count
            except Exception:
                out[label] = 0
                connection = connection if connection.is_open else pika.BlockingConnection(params)
    finally:
        if connection.is_open:
            connection.close()
    return out


def broker_problem(url: str) -> str | None:
    """None when RabbitMQ answers at `url`; otherwise what went wrong, for a message to a person."""
    import pika

    params = pika.URLParameters(url)
    params.socket_timeout = 3
    params.connection_attempts = 1
    try:
        pika.BlockingConnection(params).close()
        return None
    except Exception as exc:  # any failure to connect is reported the same way
        return f"{exc.__class__.__name__}: {exc}"


def delete_queue(url: str, name: str) -> None:
    """Remove a queue with its delay and dead-letter queues (demo and test clean-up)."""
    import pika

    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for queue in (name, f"{name}.DQ", f"{name}.XQ"):
            channel.queue_delete(queue)
        connection.close()
    except Exception:
        pass

"""Alerts shown as banners in the UI and counted in /metrics."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlmodel import Session

from models.states import utcnow
from models.tables import Alert


def raise_alert(session: Session, kind: str, subject: str, message: str) -> None:
    open_alert = session.execute(
        select(Alert).where(Alert.kind == kind, Alert.subject == subject, Alert.resolved_at == None)  # noqa: E711
    ).scalars().first()
    if open_alert is None:
        session.add(Alert(kind=kind, subject=subject, message=message))
    elif open_alert.message != message:
        open_alert.message = message
        session.add(open_alert)


def resolve_alerts(session: Session, kind: str, subject: str) -> None:
    session.execute(
        update(Alert)
        .where(Alert.kind == kind, Alert.subject == subject, Alert.resolved_at == None)  # noqa: E711
        .values(resolved_at=utcnow())
    )


def open_alerts(session: Session) -> list[Alert]:
    return list(session.execute(select(Alert).where(Alert.resolved_at == None).order_by(Alert.id)).scalars().all())  # noqa: E711

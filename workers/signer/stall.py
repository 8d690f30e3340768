"""Is the signer stuck without saying why? A pure decision, its clock read by the caller."""
from __future__ import annotations


def is_stalled(*, ready_jobs: int, on_hold: bool, quiet_seconds: float, threshold_seconds: float) -> bool:
    """Ready work, no hold that explains the wait, and nothing sent or settled for too long."""
    return ready_jobs > 0 and not on_hold and quiet_seconds >= threshold_seconds

"""When an event is final enough to confirm its job (BLOCKPROOF_FINALITY): pure decisions."""
from __future__ import annotations

import enum

TAGS = {"safe": "safe", "finalized": "finalized"}


def tag_for(mode: str) -> str | None:
    """The block tag the node is asked for, or None when confirmations are counted here."""
    return TAGS.get(mode)


def confirmable_through(mode: str, head: int, confirmations: int, tagged_block: int | None) -> int:
    """The highest block whose events may be confirmed: `confirmations` below the head (its own block counts as
    one), or the node's safe / finalized block, never above the head."""
    if mode == "confirmations":
        return head - confirmations + 1
    if tagged_block is None:
        return -1  # the node has no such block yet: nothing is final
    return min(tagged_block, head)


def reason(mode: str, confirmations: int, kind: str = "event") -> str:
    if mode == "confirmations":
        return f"{kind} {confirmations} blocks deep"
    return f"{kind} at or below the {mode} block"


class Lookup(enum.Enum):
    """How the consumer makes sure its checkpoint block is still canonical before it reads on."""
    NONE = "none"  # no need: the next range's first block must name it as parent (checked with that range)
    HEAD = "head"  # the checkpoint is the head: the head just read says
    FETCH = "fetch"  # ask for the block at the checkpoint's height


def checkpoint_lookup(*, has_checkpoint: bool, suspect: bool, checkpoint: int, head: int) -> Lookup:
    """`suspect`: at start-up, or the chain moved during the last read."""
    if not has_checkpoint:
        return Lookup.NONE
    if suspect or head < checkpoint:
        return Lookup.FETCH
    return Lookup.HEAD if head == checkpoint else Lookup.NONE

"""The nonce policy for one key, owned by the one signer thread.

Seeded from the chain when this database has never used the key; otherwise the database is the
record of what we signed. If the chain has moved past us (the key was used elsewhere), jump
forward. Reserving a nonce happens in the same database transaction that writes the signed
attempt, so a nonce is never handed out without a record of it.
"""
from __future__ import annotations

from sqlmodel import Session

from chain.rpc import Rpc
from models.states import utcnow
from models.tables import SignerState


def load_state(session: Session, rpc: Rpc, address: str) -> SignerState:
    state = session.get(SignerState, address)
    chain_next = rpc.nonce(address, "latest")
    if state is None:
        state = SignerState(address=address, next_nonce=rpc.nonce(address, "pending"))
    elif chain_next > state.next_nonce:
        state.next_nonce = chain_next
    state.chain_nonce = chain_next
    state.updated_at = utcnow()
    session.add(state)
    return state


def reserve(session: Session, address: str, chain_nonce: int = 0, count: int = 1) -> int:
    """The next `count` nonces (returns the first): ours, unless the chain has moved past them (the key
    was used elsewhere)."""
    state = session.get(SignerState, address, with_for_update=True)
    nonce = max(state.next_nonce, chain_nonce)
    state.next_nonce = nonce + count
    session.add(state)
    return nonce

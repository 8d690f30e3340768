"""The real signer or consumer, run as its own process with a fault at one chosen point: the faults live here,
around the real components, not in their code or settings.

    python -m tests.crashing signer          # exits (as a crash would) right after the write-ahead commit of its
                                             # first signed transactions, before broadcasting them
    python -m tests.crashing consumer N      # SIGKILLs itself after inserting the events of its Nth range,
                                             # before that range's checkpoint moves
"""
from __future__ import annotations

import logging
import os
import signal
import sys

CRASHED_AFTER_SIGNING = 86


def signer_dies_after_signing() -> None:
    from workers.signer import sender

    def dies(rpc, raws):
        logging.getLogger("blockproof.signer").error(
            "FAULT INJECTION (tests/crashing.py): exiting after the write-ahead commit, before broadcasting %d "
            "transaction(s)", len(raws))
        logging.shutdown()
        os._exit(CRASHED_AFTER_SIGNING)

    sender.broadcast_many = dies  # the loop calls it right after committing the signed attempts


def consumer_dies_before_checkpoint(nth: int) -> None:
    from workers.consumer import follower

    insert = follower.insert_ignoring_duplicates
    ranges = {"written": 0}

    def inserts_then_dies(session, model, rows, keys):
        insert(session, model, rows, keys)
        if model is follower.CredentialEvent and rows:
            ranges["written"] += 1
            if ranges["written"] >= nth:
                logging.getLogger("blockproof.consumer").error(
                    "FAULT INJECTION (tests/crashing.py): range %d inserted; killing the consumer now", nth)
                logging.shutdown()
                os.kill(os.getpid(), signal.SIGKILL)

    follower.insert_ignoring_duplicates = inserts_then_dies


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "signer":
        signer_dies_after_signing()
    else:
        consumer_dies_before_checkpoint(int(sys.argv[2]))
    from blockproof.cli import main

    sys.exit(main([role]))

"""A process that contends for signer leases: `python -m tests.lease_contender URL START ROUNDS`.

Round i starts at START + i × 0.25 s (wall clock, shared by every contender) and tries a fresh lease (chain i),
printing `i won` or `i held`. Winners keep their leases until the process ends."""
from __future__ import annotations

import sys
import time

from models.db import engine_for
from workers.signer.lease import Lease, LeaseHeld

ADDRESS = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def main(url: str, start: float, rounds: int) -> None:
    engine = engine_for(url)
    held = []
    for i in range(rounds):
        lease = Lease(engine, chain_id=1000 + i, address=ADDRESS, ttl_seconds=60)
        while time.time() < start + i * 0.25:
            time.sleep(0.001)
        try:
            lease.acquire()
            held.append(lease)
            print(f"{i} won", flush=True)
        except LeaseHeld:
            print(f"{i} held", flush=True)
    time.sleep(0.5)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))

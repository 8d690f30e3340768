"""Chaos: a 500-row batch while the signer process is killed with SIGKILL at random moments, 20+ times,
and restarted each time. At the end every row is issued exactly once and every job is confirmed."""
from __future__ import annotations

import random
import time

from tests.faults import assert_invariants, attempts, rows_csv, transactions

KILLS = 20


def test_five_hundred_rows_survive_twenty_random_sigkills_of_the_signer(make_pipeline, sqlite_url, tmp_path):
    rng = random.Random(20260)
    # during the chaos, tiny batches and one transaction in flight (at most 2 credentials a second) so the
    # work outlasts twenty kills; afterwards the signer runs with its defaults
    throttle = {"BLOCKPROOF_BATCH_SIZE": "2", "BLOCKPROOF_MAX_IN_FLIGHT": "1"}
    p = make_pipeline(sqlite_url, block_time=1,
                      extra_env={**throttle,
                                 "BLOCKPROOF_RESEND_AFTER_SECONDS": "2"})
    p.start("consumer")
    report = p.upload(rows_csv(tmp_path, 500, 601))
    assert report.new == 500
    kills = 0
    while kills < KILLS:
        p.start("signer")
        time.sleep(rng.uniform(1.0, 4.0))  # python start-up is ~1-2 s: kills land in start-up and in work
        p.kill("signer")
        kills += 1
    assert p.counts().get("confirmed", 0) < 500, "the batch finished before the chaos ended"
    for name in throttle:
        p.extra_env.pop(name)
    p.start("signer")
    p.wait_until_settled(500, timeout=300)
    assert p.counts() == {"confirmed": 500}
    assert_invariants(p, 500)
    assert sum(t.job_count for t in transactions(p.engine) if t.status == "mined") == 500
    assert len({a.tx_hash for a in attempts(p.engine)}) == len(attempts(p.engine))

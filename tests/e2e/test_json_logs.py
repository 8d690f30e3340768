"""BLOCKPROOF_LOG_FORMAT=json: one JSON object per line, with job, batch, nonce and tx hash where known."""
from __future__ import annotations

import json
import logging

from blockproof.logs import JsonFormatter, known_fields
from tests.harness import write_csv


def test_the_known_fields_come_from_the_call_first_and_then_from_the_message():
    tx = "0x" + "ab" * 32
    assert known_fields(f"nonce 7: replacement {tx} with max fee 3 gwei", {}) == {"nonce": 7, "tx_hash": tx}
    assert known_fields("job 12 of batch 3 failed", {"batch": 4}) == {"batch": 4, "job": 12}
    assert known_fields("fingerprint " + tx + " already used", {}) == {}  # a fingerprint is not a transaction


def test_a_record_becomes_one_json_line_with_its_traceback_inside():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        record = logging.LogRecord("blockproof.signer", logging.ERROR, __file__, 1, "nonce %s failed", (5,),
                                   sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["nonce"] == 5 and "boom" in entry["traceback"]


def test_the_signer_and_consumer_log_json_lines_naming_nonce_tx_hash_jobs_and_batch(make_pipeline, sqlite_url,
                                                                                    tmp_path):
    p = make_pipeline(sqlite_url, extra_env={"BLOCKPROOF_LOG_FORMAT": "json"})
    p.start("signer")
    p.start("consumer")
    report = p.upload(write_csv(tmp_path / "rows.csv", 4, seed=3))
    p.wait_until_settled(4)
    p.stop_all()
    for role in ("signer", "consumer"):
        lines = [line for line in p.log(role).splitlines() if line.strip()]
        assert lines, f"{role} logged nothing"
        entries = [json.loads(line) for line in lines]  # every line is one object
        assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    sent = [e for e in map(json.loads, p.log("signer").splitlines()) if e["message"].startswith("sent nonce")]
    assert sent and sent[0]["nonce"] == 0 and sent[0]["tx_hash"].startswith("0x") and len(sent[0]["tx_hash"]) == 66
    assert sent[0]["batch"] == report.batch_ids[0] and len(sent[0]["jobs"]) == 4

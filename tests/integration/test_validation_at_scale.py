"""Validation at scale: 200,000 rows stream through in bounded memory (slow: about 40 s, so not a unit test)."""
import datetime as dt
import tracemalloc

from examples.generate import generate
from producers.validation import iter_validated_chunks

TODAY = dt.date(2026, 1, 15)


def test_200k_rows_validate_in_bounded_memory(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8", newline="") as out:
        generate(200_000, 0.01, 3, out)
    tracemalloc.start()
    try:
        valid = invalid_lines = rows_seen = 0
        for chunk in iter_validated_chunks(path, today=TODAY):
            valid += len(chunk.rows)
            invalid_lines += len({e.line for e in chunk.errors})
            rows_seen += chunk.data_rows
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows_seen == 200_000 and valid + invalid_lines == 200_000 and invalid_lines == 2000
    print(f"peak {peak / 2**20:.0f} MiB")
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MiB"

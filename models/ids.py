"""Which integers can name a row at all."""
from __future__ import annotations

# Row ids are INTEGER columns (32 bits on PostgreSQL; credential ids are BIGINT, see blockproof.verify): a larger
# or negative id names no row, and sent to the database it would be an error (HTTP 500) instead of "not found".
ROW_ID_MAX = 2**31 - 1


def is_row_id(value: int) -> bool:
    return 0 <= value <= ROW_ID_MAX

"""Keccak-256 for the hot loops of validation (one checksum and one fingerprint per row).

safe-pysha3's C implementation is about 13× faster per call than eth-hash's default pycryptodome
backend (0.8 µs against 10 µs here); both compute the same Keccak-256, and eth-hash stays the fallback.
"""
from __future__ import annotations

try:
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - the dependency is pinned; this keeps a broken install working
    from eth_hash.auto import keccak  # noqa: F401

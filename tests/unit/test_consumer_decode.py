"""The consumer's fast log decoder gives exactly what eth_abi gives, for any event the contract can emit."""
from __future__ import annotations

from eth_abi import encode
from hypothesis import given, settings, strategies as st

from chain import vault
from workers.consumer.decode import issued_fields, revoked_fields

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
words = st.integers(0, 2**256 - 1)


def topic(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


@settings(max_examples=300, deadline=None)
@given(credential_id=words, student=addresses, institution=addresses, fingerprint=st.binary(min_size=32, max_size=32),
       meta=st.text(max_size=120), payload=st.text(max_size=120), expires=st.integers(0, 2**64 - 1))
def test_issued_events_decode_like_eth_abi(credential_id, student, institution, fingerprint, meta, payload, expires):
    data = encode(["bytes32", "string", "string", "uint64"], [fingerprint, meta, payload, expires])
    log = {"topics": [vault.ISSUED_TOPIC, topic(credential_id), "0x" + "00" * 12 + student[2:],
                      "0x" + "00" * 12 + institution[2:]], "data": "0x" + data.hex()}
    assert issued_fields(log) == vault.decode_issued(log)


@settings(max_examples=100, deadline=None)
@given(credential_id=words, by=addresses, reason=st.binary(min_size=32, max_size=32), at=st.integers(0, 2**64 - 1))
def test_revoked_events_decode_like_eth_abi(credential_id, by, reason, at):
    data = encode(["bytes32", "uint64"], [reason, at])
    log = {"topics": [vault.REVOKED_TOPIC, topic(credential_id), "0x" + "00" * 12 + by[2:]], "data": "0x" + data.hex()}
    assert revoked_fields(log) == vault.decode_revoked(log)

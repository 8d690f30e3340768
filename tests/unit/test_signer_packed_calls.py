"""The signer's batch call: packed rows when the contract offers them, the ABI batch otherwise (pure logic)."""
from __future__ import annotations

from eth_abi import decode

from chain import vault
from models.tables import Job
from workers.signer import packer

INSTITUTION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BASE = "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG/"


def job(n: int, suffix: str = "") -> Job:
    return Job(batch_id=1, kind="issue", idempotency_key=str(n), institution=INSTITUTION,
               student_wallet="0x" + f"{n:040x}", fingerprint="0x" + f"{n + 1:064x}",
               metadata_suffix=suffix or f"{n}.json", expires_at=n * 1000)


def selector(data: str) -> str:
    return data[:10]


def test_packed_rows_are_used_when_offered_and_carry_the_same_rows_as_the_abi_batch():
    jobs = [job(n) for n in range(1, 101)]
    packed = packer.build_call(jobs, BASE, batch_extension=True, packed=True)
    plain = packer.build_call(jobs, BASE, batch_extension=True)
    assert (packed.kind, plain.kind) == ("issue_batch", "issue_batch")  # same result, same handling
    assert selector(packed.data) == "0x" + vault.selector(vault.ISSUE_BATCH_PACKED).hex()
    assert selector(plain.data) == "0x" + vault.selector(vault.ISSUE_BATCH).hex()
    institution, base, rows = decode(["address", "string", "bytes"], bytes.fromhex(packed.data[10:]))
    assert (institution.lower(), base) == (INSTITUTION.lower(), BASE)
    assert rows == vault.pack_rows([packer._item(j) for j in jobs])
    assert len(packed.data) // 2 / 100 < 120  # calldata bytes per credential (shared directory)


def test_a_row_that_cannot_be_packed_falls_back_to_the_abi_batch():
    jobs = [job(1), job(2, suffix="x" * 70_000)]  # a URI longer than the packed format's uint16 length
    call = packer.build_call(jobs, BASE, batch_extension=True, packed=True)
    assert selector(call.data) == "0x" + vault.selector(vault.ISSUE_BATCH).hex()


def test_a_packed_row_is_wallet_fingerprint_expiry_and_two_length_prefixed_suffixes():
    item = vault.IssueItem("0x" + "ab" * 20, b"\x01" * 32, "7.json", "", 0x0102)
    assert vault.pack_rows([item]) == (bytes.fromhex("ab" * 20) + b"\x01" * 32 + b"\x02\x01\x02"
                                       + b"\x00\x06" + b"7.json" + b"\x00\x00")

"""The canonical credential document and its fingerprint.

``canonical_json`` implements RFC 8785 (JSON Canonicalization Scheme): object keys
sorted by their UTF-16 code units, no whitespace, numbers serialised like ECMAScript's
``Number.prototype.toString``, strings with minimal escaping, UTF-8 output.
``fingerprint = "0x" + keccak256(canonical_json(document)).hex()``.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal

from eth_utils import keccak, to_checksum_address

from producers.salt import SALT_KEY, salt

DOCUMENT_TYPE = "BlockProofCredential"
DOCUMENT_VERSION = 1  # plain: the fingerprint hashes the graduate's details alone
PRIVATE_DOCUMENT_VERSION = 2  # with a salt keyed by the institution's secret (producers.salt)
MAX_SAFE_INTEGER = 2**53
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _escape(match: re.Match) -> str:
    ch = match.group()
    return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def _string(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape, s) + '"'


def _number(x: float) -> str:
    """ECMAScript Number::toString for a finite double (RFC 8785 section 3.2.2.3)."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"{x!r} cannot be represented in canonical JSON")
    if x == 0:
        return "0"  # also -0
    sign = "-" if x < 0 else ""
    _, digit_tuple, exp = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exp += len("".join(map(str, digit_tuple))) - len(digits)
    k = len(digits)
    n = exp + k  # value = 0.digits * 10**n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _serialise(obj, out: list) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        if abs(obj) <= MAX_SAFE_INTEGER:
            out.append(str(obj))
        elif abs(obj) < 2**1024 and int(float(obj)) == obj:  # a double, written as an integer
            out.append(_number(float(obj)))
        else:
            raise ValueError(f"integer {obj} is not exactly representable as an IEEE-754 double")
    elif isinstance(obj, float):
        out.append(_number(obj))
    elif isinstance(obj, str):
        out.append(_string(obj))
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, item in enumerate(obj):
            if i:
                out.append(",")
            _serialise(item, out)
        out.append("]")
    elif isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
        out.append("{")
        for i, key in enumerate(sorted(obj, key=lambda k: k.encode("utf-16-be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _serialise(obj[key], out)
        out.append("}")
    else:
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def canonical_json(obj) -> bytes:
    """RFC 8785 canonical JSON of ``obj`` as UTF-8 bytes (lone surrogates are rejected)."""
    out: list[str] = []
    _serialise(obj, out)
    return "".join(out).encode("utf-8")


def credential_document(*, institution: str, student_id: str, student_name: str, student_wallet: str,
                        degree: str, major: str, graduation_date: str, expires_at: int = 0,
                        secret: bytes | None = None) -> dict:
    """The credential record whose canonical JSON is fingerprinted (addresses EIP-55 checksummed): version 1, or
    with the institution's ``secret`` version 2 with its salt."""
    if not _ISO_DATE.match(graduation_date):
        raise ValueError(f"graduation_date must be YYYY-MM-DD, not {graduation_date!r}")
    doc = {
        "type": DOCUMENT_TYPE,
        "version": DOCUMENT_VERSION if secret is None else PRIVATE_DOCUMENT_VERSION,
        "institution": to_checksum_address(institution),
        "studentId": student_id,
        "studentName": student_name,
        "studentWallet": to_checksum_address(student_wallet),
        "degree": degree,
        "major": major,
        "graduationDate": graduation_date,
    }
    if expires_at:
        doc["expiresAt"] = int(expires_at)
    if secret is not None:
        doc[SALT_KEY] = salt(secret, canonical_json(doc))
    return doc


def fingerprint(document: dict) -> str:
    """``"0x" + keccak256(canonical_json(document)).hex()`` (66 characters)."""
    return "0x" + keccak(canonical_json(document)).hex()

"""Private fingerprints (document version 2): a per-credential salt keyed by the institution's secret.

``salt = "0x" + HMAC-SHA256(secret, canonical_json(document without "salt")).hex()`` is added to the document
before it is fingerprinted, so the fingerprint on chain reveals nothing about a guessed person to anyone without the
secret, and stays the same for the same row (re-uploads are recognised; the same fingerprint is never issued twice).
docs/fingerprints.md is the specification for third parties.

The secret is read from a file (``BLOCKPROOF_FINGERPRINT_SECRET_FILE``) by the upload, held in memory only, and
never logged, stored or shown: messages name the file, never its contents.
"""
from __future__ import annotations

import hashlib
import hmac

SALT_KEY = "salt"


def salt(secret: bytes, unsalted: bytes) -> str:
    """The salt of a version 2 document, from the canonical JSON of the document without its salt."""
    return "0x" + hmac.new(secret, unsalted, hashlib.sha256).hexdigest()

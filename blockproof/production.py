"""What production mode requires before anything puts credentials on chain (the web, the signer, every
upload): permanent URIs that work, and the institution's fingerprint secret (read from its file, held in memory
only, never logged, stored or shown: messages name the file, never its contents)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from blockproof.errors import ConfigurationError

if TYPE_CHECKING:
    from blockproof.settings import Settings

MIN_SECRET_BYTES = 32


def read_secret(path: Path) -> bytes:
    """The file's bytes without trailing line breaks and spaces (editors add them); at least 32 bytes."""
    try:
        secret = Path(path).read_bytes().rstrip(b"\r\n\t ")
    except OSError as exc:
        raise ConfigurationError(f"BLOCKPROOF_FINGERPRINT_SECRET_FILE: cannot read {path} ({exc.strerror})") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"BLOCKPROOF_FINGERPRINT_SECRET_FILE: {path} holds {len(secret)} bytes; the fingerprint secret must be at "
            f"least {MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -hex 32 > {path}`)")
    return secret


def refuse_unfit_for_production(settings: Settings) -> None:
    """ConfigurationError, at the start of whatever would put credentials on chain, when production mode lacks what
    cannot be fixed afterwards: permanent URIs that work (no file://) and private fingerprints."""
    if not settings.production:
        return
    problems = settings.production_uri_problems()
    try:
        fingerprint_secret(settings)
    except ConfigurationError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigurationError("production mode: refusing to start: " + "; ".join(problems))


def fingerprint_secret(settings: Settings) -> bytes | None:
    """The institution's secret, or None for plain (version 1) fingerprints, which production refuses."""
    if settings.fingerprint_secret_file:
        return read_secret(settings.fingerprint_secret_file)
    if settings.production:
        raise ConfigurationError("production mode: set BLOCKPROOF_FINGERPRINT_SECRET_FILE; without it fingerprints "
                                 "are plain keccak hashes of a graduate's details (document version 1), which anyone "
                                 "who guesses those details can confirm against the chain")
    return None

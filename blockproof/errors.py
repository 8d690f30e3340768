"""One exception root for the project."""
from __future__ import annotations


class BlockProofError(Exception):
    """Root of every error this project raises on purpose."""


class RpcError(BlockProofError):
    """The node answered a JSON-RPC request with an error."""

    def __init__(self, code: int, message: str, data: object = None, method: str = "") -> None:
        super().__init__(f"{method}: {message} (code {code})" if method else f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data
        self.method = method


class RpcUnavailable(BlockProofError):
    """The node could not be reached, or did not answer in time: the outcome is unknown."""


class IssuanceOnHold(BlockProofError):
    """A condition on chain stops issuance (paused, not a controller, no funds); it resumes by itself."""


class TemporaryFailure(BlockProofError):
    """Worth retrying automatically, with backoff."""


class ConfigurationError(BlockProofError):
    """A required setting is missing or wrong."""


class NotFound(BlockProofError, LookupError):
    """What a person asked for (a batch, a job, an upload) does not exist."""


class Conflict(BlockProofError):
    """A person's action no longer matches what is there (confirm again)."""

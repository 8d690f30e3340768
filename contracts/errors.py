"""Turn the vault's revert data into plain words a registrar understands.

    try:
        vault.functions.issueCredential(req).transact(...)
    except Exception as exc:
        err = decode_revert(revert_data_from_exception(exc))
        if err: print(err.message, "(can retry later)" if err.retryable else "")

``retryable`` means: the very same request may succeed later, after some state change
(``retry_when`` says which); False means it never will (bad input, already done).
Decodes the 13 errors of the interface, the batch extensions' ``BatchLengthMismatch`` and
``PackedRowsMalformed``,
and Solidity's ``Error(string)`` / ``Panic(uint256)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address


@dataclass(frozen=True)
class DecodedError:
    name: str
    args: dict[str, Any]
    message: str
    retryable: bool
    retry_when: str = ""  # what must change before a retry can succeed ("" when never)
    selector: str = field(default="", repr=False)


def _short(value: str) -> str:
    return value if len(value) <= 14 else f"{value[:10]}…{value[-4:]}"


@dataclass(frozen=True)
class _Spec:
    name: str
    params: tuple[tuple[str, str], ...]  # (abi type, arg name)
    retryable: bool
    retry_when: str
    render: Callable[[dict[str, Any]], str]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(t for t, _ in self.params)})"


_SPECS: tuple[_Spec, ...] = (
    _Spec("NotSuperAdmin", (), True, "the signer becomes the super admin",
          lambda a: "Only the contract's super admin (or the pending admin, to accept) may do this."),
    _Spec("NotRegistrar", (), True, "the super admin makes the signer a registrar",
          lambda a: "Only a registrar may register or update institutions; this account is not one."),
    _Spec("UnauthorizedController", (("address", "institution"), ("address", "sender")), True,
          "the signer is made a controller of the institution",
          lambda a: (
              "A controller address cannot be the zero address."
              if int(a["sender"], 16) == 0
              else f"Account {a['sender']} is not allowed to act for institution {a['institution']}: "
              "it is neither the institution nor one of its enabled controllers."
          )),
    _Spec("InstitutionNotFound", (("address", "institution"),), True, "a registrar registers the institution",
          lambda a: f"Institution {a['institution']} is not registered on this contract."),
    _Spec("InstitutionInactive", (("address", "institution"),), True, "a registrar reactivates the institution",
          lambda a: f"Institution {a['institution']} is deactivated, so it cannot issue credentials now."),
    _Spec("InvalidInstitution", (), False, "",
          lambda a: "An institution needs a non-zero address and a non-empty name."),
    _Spec("InvalidFingerprint", (), False, "",
          lambda a: "The credential's fingerprint is empty (all zeros); compute it from the document first."),
    _Spec("InvalidStudentWallet", (), False, "",
          lambda a: "The student's wallet address is missing (zero address)."),
    _Spec("FingerprintAlreadyUsed", (("bytes32", "fingerprint"),), False, "",
          lambda a: f"This credential was already issued: its fingerprint {_short(a['fingerprint'])} "
          "is already on chain."),
    _Spec("CredentialNotFound", (("uint256", "credentialId"),), False, "",
          lambda a: f"There is no credential with id {a['credentialId']} on this contract."),
    _Spec("CredentialRevokedAlready", (("uint256", "credentialId"),), False, "",
          lambda a: f"Credential {a['credentialId']} is already revoked; nothing more to do."),
    _Spec("InvalidSuperAdminCandidate", (), False, "",
          lambda a: "The new super admin cannot be the zero address."),
    _Spec("ContractPaused", (), True, "the super admin unpauses the contract",
          lambda a: "The contract is paused: no credential can be issued or revoked until it is unpaused."),
    # extension (batch revoke)
    _Spec("BatchLengthMismatch", (("uint256", "credentialIds"), ("uint256", "reasonHashes")), False, "",
          lambda a: f"The batch revocation lists {a['credentialIds']} credential ids but "
          f"{a['reasonHashes']} reasons; they must match one to one."),
    # extension (packed batch issue)
    _Spec("PackedRowsMalformed", (("uint256", "offset"),), False, "",
          lambda a: f"The packed batch's row at byte {a['offset']} does not parse: it runs past the end of the "
          "rows or gives an expiry longer than 8 bytes."),
    # Solidity built-ins
    _Spec("Error", (("string", "reason"),), False, "",
          lambda a: f"The contract refused: {a['reason']}"),
    _Spec("Panic", (("uint256", "code"),), False, "",
          lambda a: f"The contract hit an internal error (panic code {hex(a['code'])})."),
)

#: selector (4 bytes) -> spec
_BY_SELECTOR: dict[bytes, _Spec] = {function_signature_to_4byte_selector(s.signature): s for s in _SPECS}
#: error name -> selector hex, e.g. ERROR_SELECTORS["ContractPaused"] == "0xab35696f"
ERROR_SELECTORS: dict[str, str] = {s.name: "0x" + function_signature_to_4byte_selector(s.signature).hex()
                                   for s in _SPECS}
INTERFACE_ERRORS: tuple[str, ...] = tuple(s.name for s in _SPECS[:13])


def _to_bytes(data: str | bytes | bytearray | memoryview | None) -> bytes | None:
    if data is None:
        return None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        text = data.strip()
        if text.startswith(("0x", "0X")):
            text = text[2:]
        try:
            return bytes.fromhex(text)
        except ValueError:
            return None
    return None


def _normalise(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type == "bytes32":
        return "0x" + bytes(value).hex()
    return value


def decode_revert(data: str | bytes | None) -> DecodedError | None:
    """Decode revert data (hex str or bytes) from the vault; None when empty or unknown."""
    raw = _to_bytes(data)
    if not raw or len(raw) < 4:
        return None
    spec = _BY_SELECTOR.get(raw[:4])
    if spec is None:
        return None
    types = [t for t, _ in spec.params]
    try:
        values = abi_decode(types, raw[4:]) if types else ()
    except Exception:  # malformed payload for a known selector
        return None
    args = {name: _normalise(t, v) for (t, name), v in zip(spec.params, values)}
    return DecodedError(
        name=spec.name,
        args=args,
        message=spec.render(args),
        retryable=spec.retryable,
        retry_when=spec.retry_when,
        selector="0x" + raw[:4].hex(),
    )


def _data_from(obj: Any, depth: int = 0) -> bytes | None:
    """Revert data inside the shapes JSON-RPC nodes and web3 use: hex str, {"data": ...}, nested."""
    if depth > 4 or obj is None:
        return None
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj) or None
    if isinstance(obj, str):
        if obj.startswith(("0x", "0X")) and len(obj) >= 10:
            return _to_bytes(obj)
        return None
    if isinstance(obj, dict):
        for key in ("data", "error", "originalError", "result"):
            if key in obj:
                found = _data_from(obj[key], depth + 1)
                if found:
                    return found
    return None


def revert_data_from_exception(exc: BaseException | None) -> bytes | None:
    """Revert data carried by a web3.py v8 exception, or None.

    Handles ContractCustomError / ContractLogicError / ContractPanicError (``.data``),
    Web3RPCError (``.rpc_response["error"]["data"]``), legacy ValueError({"data": ...}) and
    the same wrapped as ``__cause__`` / ``__context__``.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found = _data_from(getattr(exc, "data", None))
        if not found:
            rpc_response = getattr(exc, "rpc_response", None)
            if isinstance(rpc_response, dict):
                found = _data_from(rpc_response.get("error"))
        if not found:
            for arg in getattr(exc, "args", ()):
                if isinstance(arg, dict):
                    found = _data_from(arg)
                    if found:
                        break
        if found:
            return found
        exc = exc.__cause__ or exc.__context__
    return None


def describe_exception(exc: BaseException) -> DecodedError | None:
    """Shorthand for decode_revert(revert_data_from_exception(exc))."""
    return decode_revert(revert_data_from_exception(exc))

"""The public verification pages (no login, rate-limited): /verify (drop or paste a credential document; the
browser computes its fingerprint), /verify/<fingerprint> (the non-personal facts, for a QR code) and their JSON,
/api/verify/<fingerprint>. The answers come from blockproof.verify_fingerprint: database first, chain fallback."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from blockproof.errors import RpcError, RpcUnavailable
from blockproof.verify import InvalidFingerprint
from blockproof.verify_fingerprint import verify_fingerprint
from web.ratelimit import limited

router = APIRouter(dependencies=[Depends(limited)])
TITLES = {"valid": "Valid", "revoked": "Revoked", "expired": "Expired", "not_issued": "Not issued by this contract",
          "altered": "Altered"}
Address = Annotated[str | None, Query(max_length=42, description="the document's studentWallet / institution")]


def _answer(request: Request, fingerprint: str, wallet: str | None = None, institution: str | None = None) -> dict:
    state = request.app.state
    try:
        return verify_fingerprint(fingerprint, settings=state.settings, engine=state.engine, rpc=state.rpc,
                                  wallet=wallet, institution=institution, clock=state.chain_clock,
                                  facts=state.verify_facts)
    except InvalidFingerprint as exc:
        raise HTTPException(422, str(exc))
    except (RpcUnavailable, RpcError) as exc:
        raise HTTPException(503, f"This server has not seen this fingerprint and the chain could not be asked: {exc}")


@router.get("/api/verify/{fingerprint}", tags=["public"],
            summary="The verdict on the credential carrying this fingerprint (database first, chain fallback); public, "
                    "rate-limited",
            description="`verdict`: valid | revoked | expired | not_issued | altered (no credential has this "
                        "fingerprint, but the `wallet` given holds one from the `institution` given), `reason` in a "
                        "sentence, and only non-personal facts: institution and its name, issue / expiry / "
                        "revocation dates, transaction. 429 beyond BLOCKPROOF_VERIFY_REQUESTS_PER_MINUTE.")
def verify_api(request: Request, fingerprint: str, wallet: Address = None, institution: Address = None):
    return _answer(request, fingerprint, wallet, institution)


@router.get("/verify", include_in_schema=False)
def verify_page(request: Request):
    return request.app.state.renderer.page(request, "verify.html", {"title": "Verify a credential"})


@router.get("/verify/{fingerprint}", include_in_schema=False)
def verify_facts(request: Request, fingerprint: str):
    answer = _answer(request, fingerprint)
    return request.app.state.renderer.page(request, "verify_facts.html", {
        "title": "Credential " + TITLES[answer["verdict"]].lower(), "a": answer, "verdict_title": TITLES[answer["verdict"]]})

// The contract's own answer, asked over JSON-RPC from the browser: no server of ours in between.
// Only the calls of the BlockProofCredentialVault interface are used, so any deployment of it can be checked.
import { checksumAddress, keccakHex } from "./document.js";

const utf8 = new TextEncoder();
const selector = (signature) => keccakHex(utf8.encode(signature)).slice(2, 10);
const word = (hex) => hex.replace(/^0x/, "").toLowerCase().padStart(64, "0");
const uint = (n) => BigInt(n).toString(16).padStart(64, "0");

async function rpc(url, method, params) {
  let reply;
  try {
    reply = await fetch(url, { method: "POST", headers: { "content-type": "application/json" },
                               body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  } catch (error) {
    throw new Error("the node at " + url + " could not be reached (" + error.message + ")");
  }
  const body = await reply.json();
  if (body.error) throw new Error(method + ": " + body.error.message);
  return body.result;
}

function words(hex) {
  const data = hex.replace(/^0x/, "");
  return { at: (i) => BigInt("0x" + (data.slice(i * 64, i * 64 + 64) || "0")), hex: (i) => "0x" + data.slice(i * 64, i * 64 + 64), data };
}

const call = (url, to, data) => rpc(url, "eth_call", [{ to, data: "0x" + data }, "latest"]);

async function studentCredentialIds(url, vault, wallet) {
  const w = words(await call(url, vault, selector("studentCredentialIds(address)") + word(wallet)));
  const start = Number(w.at(0)) / 32;
  const count = Number(w.at(start));
  return Array.from({ length: Math.min(count, 200) }, (_, i) => w.at(start + 1 + i));
}

async function credentialStatus(url, vault, id) {
  const w = words(await call(url, vault, selector("credentialStatus(uint256)") + uint(id)));
  return { id, exists: w.at(0) === 1n, valid: w.at(1) === 1n, revoked: w.at(2) === 1n, fingerprint: w.hex(3),
           institution: checksumAddress("0x" + w.hex(5).slice(-40)), issuedAt: Number(w.at(6)), expiresAt: Number(w.at(7)),
           revokedAt: Number(w.at(8)) };
}

async function verifyFingerprint(url, vault, id, fingerprint) {
  return words(await call(url, vault, selector("verifyFingerprint(uint256,bytes32)") + uint(id) + word(fingerprint))).at(0) === 1n;
}

async function institutionName(url, vault, institution) {
  const w = words(await call(url, vault, selector("getInstitution(address)") + word(institution)));
  const tuple = Number(w.at(0)) / 32;
  const at = tuple + Number(w.at(tuple)) / 32;
  const length = Number(w.at(at));
  const hex = w.data.slice((at + 1) * 64, (at + 1) * 64 + length * 2);
  return new TextDecoder().decode(Uint8Array.from(hex.match(/../g) || [], (b) => parseInt(b, 16)));
}

// The verdict on `document` (already fingerprinted) from the chain alone.
export async function verifyOnChain({ url, vault, document, fingerprint }) {
  if (!/^0x[0-9a-fA-F]{40}$/.test(vault)) throw new Error("the contract address is not 0x followed by 40 hex digits");
  if ((await rpc(url, "eth_getCode", [vault, "latest"])) === "0x") {
    throw new Error("there is no contract at " + vault + " on this chain");
  }
  const ids = await studentCredentialIds(url, vault, document.studentWallet);
  const statuses = await Promise.all(ids.map((id) => credentialStatus(url, vault, id)));
  const match = statuses.find((s) => s.exists && s.fingerprint === fingerprint.toLowerCase());
  const base = { fingerprint, contract: vault };
  if (!match) {
    const same = statuses.some((s) => s.institution.toLowerCase() === document.institution.toLowerCase());
    return same
      ? { ...base, verdict: "altered", institution: document.institution,
          reason: "This document does not match any credential on chain: it names a graduate who holds a credential " +
                  "from this institution, but the document was changed after it was issued (its fingerprint is not " +
                  "the one on chain)." }
      : { ...base, verdict: "not_issued",
          reason: "No credential with this document's fingerprint was issued by this contract." };
  }
  const [verified, name, block] = await Promise.all([
    verifyFingerprint(url, vault, match.id, fingerprint), institutionName(url, vault, match.institution),
    rpc(url, "eth_getBlockByNumber", ["latest", false])]);
  const now = Number(BigInt(block.timestamp));
  const verdict = verified ? "valid" : match.revoked ? "revoked"
    : match.expiresAt !== 0 && match.expiresAt < now ? "expired" : "not_issued";
  return { ...base, verdict, credential_id: match.id.toString(), institution: match.institution, institution_name: name,
           issued_at: match.issuedAt, expires_at: match.expiresAt || null, revoked_at: match.revokedAt || null,
           checked_at: now };
}

// The standalone verifier: one HTML file, opened from disk, that asks the chain directly.
import { TITLES, readDocument, utc, wireInput } from "./document.js";
import { verifyOnChain } from "./chain.js";

const $ = (id) => document.getElementById(id);
const REASONS = {
  valid: (a) => "This credential is valid: issued on chain by the institution below, not revoked, " +
                (a.expires_at ? "valid until " + utc(a.expires_at) + "." : "with no expiry."),
  revoked: (a) => "This credential was revoked by its institution on " + utc(a.revoked_at) + ".",
  expired: (a) => "This credential expired on " + utc(a.expires_at) + " (chain time " + utc(a.checked_at) + ").",
};

function show(verdict, title, reason, facts) {
  const result = $("result");
  result.hidden = false;
  result.dataset.verdict = verdict;
  $("verdict").textContent = title;
  $("reason").textContent = reason;
  const list = $("facts");
  list.replaceChildren();
  for (const [label, value] of facts) {
    if (!value) continue;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  }
}

async function verify() {
  let read;
  try {
    read = readDocument($("document").value);
  } catch (error) {
    show("problem", "Cannot check this document", error.message, []);
    return;
  }
  $("verify-button").disabled = true;
  try {
    const a = await verifyOnChain({ url: $("rpc").value.trim(), vault: $("contract").value.trim(),
                                    document: read.document, fingerprint: read.fingerprint });
    const reason = REASONS[a.verdict] ? REASONS[a.verdict](a) : a.reason;
    show(a.verdict, TITLES[a.verdict], reason, [
      ["Institution", a.institution_name ? a.institution_name + " (" + a.institution + ")" : a.institution],
      ["Issued", utc(a.issued_at)], ["Expires", utc(a.expires_at)], ["Revoked", utc(a.revoked_at)],
      ["Credential", a.credential_id], ["Fingerprint", a.fingerprint], ["Contract", a.contract]]);
  } catch (error) {
    show("problem", "Cannot check this document", "The check could not be made: " + error.message, []);
  } finally {
    $("verify-button").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("rpc")) $("rpc").value = params.get("rpc");
  if (params.get("contract")) $("contract").value = params.get("contract");
  $("verify-form").addEventListener("submit", (event) => { event.preventDefault(); verify(); });
  wireInput({ zone: $("drop"), input: $("file"), textarea: $("document"), onText: () => {} });
});

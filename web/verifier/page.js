// The public verification page (/verify): the document never leaves the browser; only its fingerprint, and the
// wallet and institution it names (both public on chain), are sent to /api/verify.
import { TITLES, readDocument, wireInput } from "./document.js";

const $ = (id) => document.getElementById(id);

function fact(list, label, value, href) {
  if (!value) return;
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = value;
    a.rel = "noopener";
    dd.appendChild(a);
  } else {
    dd.textContent = value;
  }
  list.append(dt, dd);
}

export function showAnswer(answer) {
  const result = $("result");
  result.hidden = false;
  result.dataset.verdict = answer.verdict;
  $("verdict").textContent = TITLES[answer.verdict] || answer.verdict;
  $("reason").textContent = answer.reason;
  const list = $("facts");
  list.replaceChildren();
  const institution = answer.institution_name ? answer.institution_name + " (" + answer.institution + ")"
                                              : answer.institution;
  fact(list, "Institution", institution);
  fact(list, "Issued", answer.issued_on);
  fact(list, "Expires", answer.expires_on);
  fact(list, "Revoked", answer.revoked_on);
  fact(list, "Transaction", answer.tx_hash, answer.tx_url);
  fact(list, "Credential", answer.credential_id ? String(answer.credential_id) : "");
  fact(list, "Fingerprint", answer.fingerprint, answer.credential_id ? "/verify/" + answer.fingerprint : "");
}

function showProblem(message) {
  const result = $("result");
  result.hidden = false;
  result.dataset.verdict = "problem";
  $("verdict").textContent = "Cannot check this document";
  $("reason").textContent = message;
  $("facts").replaceChildren();
}

async function verify() {
  let read;
  try {
    read = readDocument($("document").value);
  } catch (error) {
    showProblem(error.message);
    return;
  }
  const query = new URLSearchParams({ wallet: read.document.studentWallet, institution: read.document.institution });
  $("verify-button").disabled = true;
  try {
    const reply = await fetch("/api/verify/" + read.fingerprint + "?" + query, { headers: { accept: "application/json" } });
    const body = await reply.json();
    if (!reply.ok) throw new Error(typeof body.detail === "string" ? body.detail : "the server answered " + reply.status);
    showAnswer(body);
  } catch (error) {
    showProblem("The check could not be made: " + error.message);
  } finally {
    $("verify-button").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (!$("verify-form")) return;
  $("verify-form").addEventListener("submit", (event) => { event.preventDefault(); verify(); });
  wireInput({ zone: $("drop"), input: $("file"), textarea: $("document"), onText: verify });
});

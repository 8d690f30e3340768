// A credential document and its fingerprint, computed in the browser exactly as docs/fingerprints.md specifies:
// keccak-256 of the RFC 8785 canonical JSON (pinned npm packages, bundled by `make verifier`).
import canonicalize from "canonicalize";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { bytesToHex } from "@noble/hashes/utils.js";

export const TITLES = {
  valid: "Valid",
  revoked: "Revoked",
  expired: "Expired",
  not_issued: "Not issued by this contract",
  altered: "Altered",
};

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

export function keccakHex(bytes) {
  return "0x" + bytesToHex(keccak_256(bytes));
}

// {document, canonical, fingerprint}, or an Error whose message a person can act on.
export function readDocument(text) {
  let document;
  try {
    document = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    throw new Error("This is not a credential document: it is not valid JSON (" + error.message + ").");
  }
  if (document === null || typeof document !== "object" || Array.isArray(document)) {
    throw new Error("This is not a credential document: it should be a JSON object with the graduate's details.");
  }
  if (document.type !== "BlockProofCredential") {
    throw new Error('This is not a BlockProof credential document (its "type" is not "BlockProofCredential").');
  }
  if (document.version !== 1 && document.version !== 2) {
    throw new Error("This credential document has version " + JSON.stringify(document.version) +
                    "; this verifier knows versions 1 and 2.");
  }
  for (const key of ["studentWallet", "institution"]) {
    if (typeof document[key] !== "string" || !ADDRESS.test(document[key])) {
      throw new Error('This credential document has no valid "' + key + '" address.');
    }
  }
  const canonical = canonicalize(document);
  return { document, canonical, fingerprint: keccakHex(new TextEncoder().encode(canonical)) };
}

// EIP-55: the mixed-case form people compare addresses in.
export function checksumAddress(address) {
  const lower = address.toLowerCase().replace(/^0x/, "");
  const hash = keccakHex(new TextEncoder().encode(lower)).slice(2);
  return "0x" + [...lower].map((c, i) => (parseInt(hash[i], 16) >= 8 ? c.toUpperCase() : c)).join("");
}

export function utc(seconds) {
  if (!seconds) return "";
  return new Date(Number(seconds) * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

// Reads a dropped or chosen file as text.
export function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new Error("The file could not be read."));
    reader.readAsText(file);
  });
}

// Wires a drop zone, a file input and a textarea: a dropped or chosen file's text lands in the textarea.
export function wireInput({ zone, input, textarea, onText }) {
  const take = async (file) => {
    textarea.value = await readFile(file);
    onText();
  };
  input.addEventListener("change", () => input.files[0] && take(input.files[0]));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files[0]) take(event.dataTransfer.files[0]);
  });
}

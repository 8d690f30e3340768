#!/usr/bin/env node
// Compiles FingerprintProbe.sol with the pinned npm `solc` (see package.json) and the settings its runtime code
// in producers/chain_checks.py (PROBE_RUNTIME) was built with; prints that runtime code as hex, no 0x.
// tests/integration/test_fingerprint_probe.py compares it with the embedded bytes.
// Usage: node producers/contracts/compile_probe.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = path.dirname(fileURLToPath(import.meta.url));
const PINNED_VERSION = "0.8.37";
const SOURCE = "FingerprintProbe.sol";
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  viaIR: false,
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { FingerprintProbe: ["evm.deployedBytecode.object"] } },
};

const version = solc.version();
if (!version.startsWith(PINNED_VERSION + "+")) {
  throw new Error(`solc ${version} installed, ${PINNED_VERSION} pinned: run npm ci`);
}
const input = {
  language: "Solidity",
  sources: { [SOURCE]: { content: fs.readFileSync(path.join(here, SOURCE), "utf8") } },
  settings: SETTINGS,
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
console.log(output.contracts[SOURCE].FingerprintProbe.evm.deployedBytecode.object);

#!/usr/bin/env node
// Compiles the vault contracts with the pinned npm `solc` (see package.json) and writes
// deterministic artifacts (sorted keys, no timestamps, no absolute paths):
//   contracts/build/BlockProofCredentialVault.json
//   contracts/build/BlockProofCredentialVaultBasic.json
//   contracts/build/BlockProofCredentialVaultV1.json (the layout before issue 17, for bench/gas.py)
//   contracts/build/L1FeeOracleStub.json (tests: an OP-stack GasPriceOracle's getL1Fee on Anvil)
// Usage: node contracts/compile.mjs [--out DIR]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);

const PINNED_VERSION = "0.8.37";
const CONTRACTS = [
  { name: "BlockProofCredentialVault", source: "contracts/BlockProofCredentialVault.sol" },
  { name: "BlockProofCredentialVaultBasic", source: "contracts/reference/BlockProofCredentialVaultBasic.sol" },
  { name: "BlockProofCredentialVaultV1", source: "contracts/reference/BlockProofCredentialVaultV1.sol" },
  { name: "L1FeeOracleStub", source: "contracts/reference/L1FeeOracleStub.sol" },
];
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 10000 },
  viaIR: false,
  metadata: { bytecodeHash: "ipfs" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function parseArgs(argv) {
  let out = path.join(here, "build");
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out") {
      if (!argv[i + 1]) throw new Error("--out needs a directory");
      out = path.resolve(argv[++i]);
    } else if (argv[i] === "-h" || argv[i] === "--help") {
      console.log("usage: node contracts/compile.mjs [--out DIR]");
      process.exit(0);
    } else {
      throw new Error(`unknown argument: ${argv[i]}`);
    }
  }
  return { out };
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys(value[k])]),
    );
  }
  return value;
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const version = solc.version(); // e.g. 0.8.37+commit.xxxx.Emscripten.clang
  if (!version.startsWith(PINNED_VERSION + "+")) {
    throw new Error(`solc ${version} installed, ${PINNED_VERSION} pinned: run npm ci`);
  }
  const sources = {};
  for (const c of CONTRACTS) {
    sources[c.source] = { content: fs.readFileSync(path.join(root, c.source), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const problems = output.errors || [];
  const errors = problems.filter((e) => e.severity === "error");
  for (const p of problems) {
    if (p.severity !== "error") console.error(p.formattedMessage);
  }
  if (errors.length) {
    for (const e of errors) console.error(e.formattedMessage);
    process.exit(1);
  }
  fs.mkdirSync(out, { recursive: true });
  for (const c of CONTRACTS) {
    const compiled = output.contracts[c.source][c.name];
    const artifact = sortKeys({
      contractName: c.name,
      sourcePath: c.source,
      abi: compiled.abi,
      bytecode: "0x" + compiled.evm.bytecode.object,
      deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
      compiler: { name: "solc", version },
      settings: {
        evmVersion: SETTINGS.evmVersion,
        optimizer: SETTINGS.optimizer,
        viaIR: SETTINGS.viaIR,
        metadata: SETTINGS.metadata,
      },
    });
    const file = path.join(out, `${c.name}.json`);
    fs.writeFileSync(file, JSON.stringify(artifact, null, 2) + "\n");
    console.log(`wrote ${path.relative(process.cwd(), file) || file} (${(compiled.evm.deployedBytecode.object.length / 2) | 0} bytes runtime)`);
  }
}

main();

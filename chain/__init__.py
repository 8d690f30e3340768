"""The chain layer, beneath producers, workers and web: the JSON-RPC client (rpc), the contract's codec
(vault), the pre-flight simulation (preflight), the one classifier of a node's answers (rpc_errors) and the
signer's key backends (keys)."""

"""Every alert kind resolves itself when its condition clears, and each kind has a test that produces the
condition for real, watches the alert open and then clear. This file keeps the list honest: an alert kind
added to the code without such a test fails here."""
from __future__ import annotations

import ast
import re

from blockproof.settings import PROJECT_ROOT

RESOLUTION_TESTS = {
    "deep_reorg": "tests/e2e/test_consumer_reorg.py",
    "missing_event": "tests/e2e/test_consumer_reconcile.py",
    "unmatched_events": "tests/e2e/test_consumer_reconcile.py",
    "low_balance": "tests/e2e/test_signer_alerts.py",
    "stuck_transaction": "tests/e2e/test_signer_alerts.py",
    "on_hold": "tests/e2e/test_signer_chain_state.py",
    "institution_on_hold": "tests/e2e/test_holds_and_batch_control.py",
    "signer_stalled": "tests/e2e/test_signer_sizing.py",
    "stale_heartbeat": "tests/e2e/test_status_health.py",
    "batch_on_hold": "tests/e2e/test_signer_fees.py",
}
SOURCES = ["workers", "producers", "web", "blockproof", "models"]


def raised_kinds() -> set[str]:
    kinds = set()
    for folder in SOURCES:
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "raise_alert":
                    kind = node.args[1] if len(node.args) > 1 else None
                    if isinstance(kind, ast.Name):  # a module constant: KIND = "literal"
                        kind = next(n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Assign)
                                    and any(getattr(t, "id", "") == kind.id for t in n.targets))
                    assert isinstance(kind, ast.Constant), f"{path}: an alert kind must be a literal to be checked"
                    kinds.add(kind.value)
    return kinds


def test_every_alert_kind_the_code_raises_has_a_resolution_test():
    assert raised_kinds() == set(RESOLUTION_TESTS)


def test_each_resolution_test_watches_its_kind_open_and_clear():
    for kind, file in RESOLUTION_TESTS.items():
        text = (PROJECT_ROOT / file).read_text()
        assert kind in text, f"{file} never names {kind}"
        assert re.search(r"resolved_at == None|not open_alerts|not open_stall_alerts|to clear|clears", text), file

"""The documented alert rules (docs/web-and-api.md, docs/operations.md) against a real scrape of /metrics (real Anvil, real RabbitMQ, SQLite): none fires while
all is well, each fires when its condition is produced, and the counters survive a restart of the web process."""
from __future__ import annotations

import operator
import re
import secrets
import uuid
from datetime import timedelta

import pika
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from blockproof.settings import PROJECT_ROOT, Settings
from models.db import engine_for, migrate, session_scope
from models.states import utcnow
from models.tables import Batch, ChainTransaction, ConsumerCheckpoint, Job, JobTransition, SignerState
from tests.harness import BROKER_URL, delete_queue
from tests.people import Person
from web import people
from web.app import create_app

# the rules and the runbook's alert conditions, where the docs show them
README = "\n".join((PROJECT_ROOT / "docs" / name).read_text() for name in ("web-and-api.md", "operations.md"))
VIEWER = Person("prometheus", people.VIEWER)  # a read token, as a Prometheus scrape sends it
WEB = {"web_secret": secrets.token_urlsafe(32)}
SIGNER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
CLOSED = "127.0.0.1:9"  # discard port: nothing listens there


# ---- the rules as documented, and a small evaluator for the PromQL they use -------------------------------
def documented_rules() -> dict[str, str]:
    block = README.split("## Alert rules", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    return {rule["alert"]: rule["expr"] for group in yaml.safe_load(block)["groups"] for rule in group["rules"]}


def inline_expressions() -> set[str]:
    """Alert conditions quoted in the runbook's prose and tables, e.g. `blockproof_queue_messages{kind="dead"} > 0`."""
    found = re.findall(r"`(blockproof_[a-z_]+(?:\{[^`}]*\})?)`?\s*(>=|<=|==|!=|>|<)\s*([0-9.]+)", README)
    return {f"{selector} {op} {value}" for selector, op, value in found}


EXPR = re.compile(r"^\s*(?P<name>[a-z_:]+)(?:\{(?P<matchers>[^}]*)\})?\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[0-9.]+)\s*$")
MATCHER = re.compile(r'\s*([a-z_]+)\s*(=~|!=|=)\s*"([^"]*)"\s*,?')
OPS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne}


def evaluate(expr: str, samples: list, *, strict: bool = True) -> list[dict]:
    """The series of `samples` for which `expr` (a selector compared with a number) holds: what would fire.
    strict: the metric and every label the expression names must exist in the scrape (else it could never fire)."""
    m = EXPR.match(expr)
    assert m, f"the README's expression {expr!r} is not of the form metric{{labels}} OP number"
    matchers = MATCHER.findall(m["matchers"] or "")
    assert "".join(f'{k}{o}"{v}"' for k, o, v in matchers) == re.sub(r'\s|,', "", m["matchers"] or "")
    series = [s for s in samples if s.name == m["name"]]
    assert series or not strict, f"{expr!r}: the scrape has no series named {m['name']}"
    for label, _, _ in matchers if strict else ():
        assert any(label in s.labels for s in series), f"{expr!r}: no {m['name']} series has a {label!r} label"

    def selected(s) -> bool:
        for label, op, value in matchers:
            have = s.labels.get(label, "")
            if (op == "=" and have != value) or (op == "!=" and have == value) or \
                    (op == "=~" and not re.fullmatch(value, have)):
                return False
        return True

    return [s.labels for s in series if selected(s) and OPS[m["op"]](s.value, float(m["value"]))]


def test_the_evaluator_reads_selectors_and_comparisons():
    from prometheus_client.samples import Sample

    samples = [Sample("m", {"kind": "dead", "queue": "q"}, 2.0), Sample("m", {"kind": "ready", "queue": "q"}, 5.0)]
    assert evaluate('m{kind="dead"} > 0', samples) == [{"kind": "dead", "queue": "q"}]
    assert evaluate('m{kind="dead"} > 2', samples) == []
    assert evaluate('m{kind=~"r.*"} >= 5', samples) == [{"kind": "ready", "queue": "q"}]
    assert len(evaluate("m > 1", samples)) == 2
    with pytest.raises(AssertionError, match="no m series has a 'state' label"):
        evaluate('m{state="dead"} > 0', samples)


# ---- a real world to scrape ---------------------------------------------------------------------------------
@pytest.fixture
def world(devchain, rabbitmq, tmp_path):
    url = f"sqlite:///{tmp_path / 'bp.db'}"
    migrate(url)
    engine = engine_for(url)
    queue = f"test-{uuid.uuid4().hex[:10]}"
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
        channel.queue_declare(name, durable=True)
    connection.close()
    with session_scope(engine) as s:
        s.add(SignerState(address=SIGNER, next_nonce=3, chain_nonce=3, balance_wei=str(10**24), heartbeat_at=utcnow()))
        head = devchain.w3.eth.block_number
        s.add(ConsumerCheckpoint(name="vault-events", block_number=head, head_block=head))
    settings = dict(database_url=url, queue_name=queue, broker_url=BROKER_URL, rpc_url=devchain.rpc_url,
                    rabbitmq_management_url=f"http://{CLOSED}", **WEB)
    yield {"engine": engine, "queue": queue, "settings": settings, "chain": devchain}
    delete_queue(queue)


def scrape(world, **overrides) -> list:
    """A fresh web process (nothing cached) scraped once, as Prometheus would."""
    VIEWER.enrol(world["engine"])
    app = create_app(Settings(**(world["settings"] | overrides)), world["engine"], announce=None)
    with TestClient(app) as client:
        response = client.get("/metrics", auth=VIEWER)
    assert response.status_code == 200, response.text
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def firing(samples) -> dict[str, list[dict]]:
    """Rules whose expression selects something; a series that is absent (node down: no gas price, so no
    issuances_left) fires nothing, as in Prometheus."""
    return {name: hits for name, expr in documented_rules().items()
            if (hits := evaluate(expr, samples, strict=False))}


def dead_letter(world):
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    connection.channel().basic_publish("", f"{world['queue']}.XQ", b"{}",
                                       pika.BasicProperties(delivery_mode=2))
    connection.close()


def set_signer(world, **values):
    with session_scope(world["engine"]) as s:
        s.execute(update(SignerState).values(**values))


def set_checkpoint(world, **values):
    with session_scope(world["engine"]) as s:
        s.execute(update(ConsumerCheckpoint).values(**values))


# rule -> (produce its condition, the scrape's overrides, what it must report)
SCENARIOS = {
    "BlockproofDeadLetters": (dead_letter, {}, lambda w: [{"queue": w["queue"], "kind": "dead"}]),
    "BlockproofComponentDown": (None, {"rpc_url": f"http://{CLOSED}"}, lambda w: [{"component": "node"}]),
    "BlockproofBrokerDown": (None, {"broker_url": f"amqp://guest:guest@{CLOSED}/%2F"}, lambda w: [{}]),
    "BlockproofWorkerSilent": (lambda w: set_signer(w, heartbeat_at=utcnow() - timedelta(minutes=10)), {},
                               lambda w: [{"component": "signer", "subject": SIGNER}]),
    "BlockproofIssuanceOnHold": (lambda w: set_signer(w, hold_reason="The contract is paused"), {},
                                 lambda w: [{"address": SIGNER, "why": "hold"}]),
    "BlockproofOpenAlert": (lambda w: set_checkpoint(w, updated_at=utcnow() - timedelta(minutes=10)), {},
                            lambda w: [{"kind": "stale_heartbeat"}]),
    "BlockproofLowBalance": (lambda w: set_signer(w, balance_wei="0"), {}, lambda w: [{"address": SIGNER}]),
    "BlockproofIndexerLag": (lambda w: (w["chain"].mine(25), set_checkpoint(w, block_number=0)), {},
                             lambda w: [{}]),
    "BlockproofIndexerHalted": (lambda w: set_checkpoint(w, halted_reason="reorg deeper than 64 blocks"), {},
                                lambda w: [{}]),
}


def test_every_documented_rule_has_a_scenario_and_the_runbook_quotes_only_real_series(world):
    assert set(documented_rules()) == set(SCENARIOS)
    quiet = scrape(world)
    assert 'blockproof_queue_messages{kind="dead"} > 0' in inline_expressions()
    for expr in inline_expressions() | set(documented_rules().values()):
        evaluate(expr, quiet)  # names and labels exist in a real scrape


def test_no_rule_fires_while_everything_is_well(world):
    assert firing(scrape(world)) == {}


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_each_documented_rule_fires_when_its_condition_is_real(world, rule):
    produce, overrides, expected = SCENARIOS[rule]
    if produce:
        produce(world)
    fired = firing(scrape(world, **overrides))
    assert rule in fired, f"{rule} ({documented_rules()[rule]}) did not fire; fired: {fired}"
    assert fired[rule] == expected(world) or all(e.items() <= f.items() for e, f in zip(expected(world), fired[rule]))
    assert len(fired[rule]) == len(expected(world))


def test_the_dead_letter_rule_quoted_in_the_runbook_fires_on_a_real_dead_letter(world):
    expr = 'blockproof_queue_messages{kind="dead"} > 0'
    assert evaluate(expr, scrape(world)) == []
    dead_letter(world)
    assert evaluate(expr, scrape(world)) == [{"queue": world["queue"], "kind": "dead"}]


def test_counters_of_issued_failed_retries_and_fees_come_from_the_database_and_survive_a_restart(world):
    with session_scope(world["engine"]) as s:
        batch = Batch(filename="g.csv", institution=SIGNER)
        s.add(batch)
        s.flush()
        states = ["confirmed"] * 3 + ["failed", "dead", "queued"]
        jobs = [Job(batch_id=batch.id, idempotency_key=f"0x{i:064x}", institution=SIGNER, state=state)
                for i, state in enumerate(states)]
        s.add_all(jobs)
        s.flush()
        history = [("queued", "retrying"), ("retrying", "queued"), ("queued", "retrying"), ("ready", "failed"),
                   ("retrying", "dead"), ("failed", "queued"), ("queued", "failed")]
        s.add_all(JobTransition(job_id=jobs[3].id, from_state=a, to_state=b) for a, b in history)
        s.add_all([ChainTransaction(signer=SIGNER, nonce=0, kind="issue_batch", to_address=SIGNER, data="0x",
                                    gas_limit=1, status="mined", gas_used=100_000, effective_gas_price=3 * 10**9),
                   ChainTransaction(signer=SIGNER, nonce=1, kind="issue_single", to_address=SIGNER, data="0x",
                                    gas_limit=1, status="reverted", gas_used=50_000, effective_gas_price=2 * 10**9),
                   ChainTransaction(signer=SIGNER, nonce=2, kind="issue_single", to_address=SIGNER, data="0x",
                                    gas_limit=1, status="pending")])
    expected = {("blockproof_credentials_issued_total", ()): 3,
                ("blockproof_credentials_failed_total", (("state", "failed"),)): 2,
                ("blockproof_credentials_failed_total", (("state", "dead"),)): 1,
                ("blockproof_job_retries_total", (("by", "automatic"),)): 2,
                ("blockproof_job_retries_total", (("by", "operator"),)): 1,
                ("blockproof_fees_paid_wei_total", ()): 100_000 * 3 * 10**9 + 50_000 * 2 * 10**9}

    def counters(samples):
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples
                if (s.name, tuple(sorted(s.labels.items()))) in expected}

    first = counters(scrape(world))
    assert first == expected
    assert counters(scrape(world)) == first  # another web process, same figures

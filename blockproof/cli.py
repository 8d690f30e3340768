"""The `blockproof` command line (clig.dev): messages on stderr, data on stdout, distinct exit codes."""
from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID, EXIT_PARTIAL = 0, 1, 2, 3, 4
EXIT_DOWN = 5  # status: the node, the broker or the database is unreachable, or a worker's heartbeat is stale


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _context():
    from blockproof.settings import get_settings
    from models.db import engine_for, migrate

    settings = get_settings()
    migrate(settings.database_url)
    return settings, engine_for(settings.database_url)


def cmd_upload(args) -> int:
    from pathlib import Path

    from producers.console import (EXIT_ERROR, EXIT_USAGE, ProgressLine, print_upload_summary,
                                   upload_exit_code)
    from blockproof.errors import ConfigurationError
    from producers.records import CsvFileError
    from producers.upload import commit, plan

    if not Path(args.file).is_file():
        return _file_error(args, f"{args.file} does not exist or is not a file", EXIT_USAGE)
    deadline = None
    if args.deadline:
        from models.states import utcnow
        from workers.signer.pacing import parse_deadline

        try:
            deadline = parse_deadline(args.deadline, utcnow())
        except ValueError as exc:
            return _file_error(args, f"--deadline: {exc}", EXIT_USAGE)
    settings, engine = _context()
    progress = ProgressLine()
    report = None
    try:
        report, rows = plan(args.file, filename=Path(args.file).name, institution=args.institution, settings=settings,
                            engine=engine, check_chain=not args.no_chain_check, stage=not args.dry_run,
                            progress=progress)
        if args.errors_out:
            _write_errors(args.file, report.errors, args.errors_out)
        if not args.dry_run:
            report = commit(report, rows, settings=settings, engine=engine, reject_on_invalid=args.reject_on_invalid,
                            queue_while_blocked=args.queue_while_blocked, progress=progress, deadline=deadline)
    except CsvFileError as exc:
        progress.clear()
        return _file_error(args, str(exc), EXIT_INVALID)
    except KeyboardInterrupt:
        progress.clear()
        _err("interrupted: " + (report.warnings[-1] if report and report.warnings and "requeue" in report.warnings[-1]
                                else "nothing was written"))
        _json_error(args, "interrupted", report)
        return 130
    except ConfigurationError as exc:  # a refusal of the settings: said whole, it names what to fix
        progress.clear()
        _err(f"error: {exc}")
        _json_error(args, str(exc), report)
        return EXIT_ERROR
    except Exception as exc:  # database, broker: say what happened, and how to finish the job
        progress.clear()
        _err(f"error: {exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}")
        if report is not None and report.batch_ids:  # written: the counts, and the `requeue` that finishes it
            print_upload_summary(report)
        _json_error(args, f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}", report)
        return EXIT_ERROR
    progress.clear()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    print_upload_summary(report)
    if deadline is not None and report.queued and not args.dry_run:
        _err(f"deadline {deadline:%Y-%m-%d %H:%M:%S} UTC: {_deadline_price(settings, report.queued, deadline)}")
    return upload_exit_code(report)


def _deadline_price(settings, credentials: int, deadline) -> str:
    """What the deadline costs on this chain now: the gas a block it needs and the base fee's rise."""
    from chain.rpc import Rpc
    from models.states import utcnow
    from workers.signer.loop import BATCH_GAS_PER_CREDENTIAL
    from workers.signer.pacing import deadline_price

    try:
        rpc = Rpc.for_settings(settings)
        latest = rpc.call("eth_getBlockByNumber", "latest", False)
        number, stamp = int(latest["number"], 16), int(latest["timestamp"], 16)
        back = min(number, 100)
        earlier = rpc.call("eth_getBlockByNumber", hex(number - back), False) if back else latest
        seconds = (stamp - int(earlier["timestamp"], 16)) / back if back else 1.0
        return deadline_price(credentials=credentials, gas_per_credential=BATCH_GAS_PER_CREDENTIAL,
                              gas_limit=int(latest["gasLimit"], 16), block_seconds=seconds or 1.0,
                              seconds=(deadline - utcnow()).total_seconds())
    except Exception as exc:  # noqa: BLE001 - the batch is queued; only the estimate is missing
        return f"the signer goes as fast as it needs (no estimate of the price: {exc.__class__.__name__})"


def _json_error(args, message: str, report=None) -> None:
    """With --json, a failure is a JSON object on stdout too: the report so far (if any) and the error."""
    if getattr(args, "json", False):
        from pathlib import Path

        out = report.as_dict() if report is not None else {"filename": Path(args.file).name, "written": 0, "queued": 0}
        print(json.dumps(out | {"error": message}, indent=2))


def _file_error(args, message: str, code: int) -> int:
    """The file cannot be read at all: say so on stderr, in --json and in --errors-out."""
    from producers.error_report import write_error_report

    _err(f"error: {message}")
    if getattr(args, "errors_out", None):
        write_error_report([], args.errors_out, file_error=message)
        _err(f"the error is written to {args.errors_out}")
    _json_error(args, message)
    return code


def _write_errors(source, errors, out) -> None:
    from producers.csv_reader import read_original_rows
    from producers.error_report import write_error_report

    originals = read_original_rows(source, {e.line for e in errors}) if errors else {}
    write_error_report(errors, out, original_rows=originals)
    _err(f"{len(errors)} problem(s) written to {out}")


def cmd_status(args) -> int:
    from sqlalchemy import select
    from sqlmodel import Session

    from blockproof import health, status
    from blockproof.settings import get_settings
    from models.alerts import open_alerts
    from models.db import engine_for, migrate, session_scope
    from models.tables import Batch

    settings = get_settings()
    probes = health.probe_all(settings)
    data: dict = {"reachability": {p.component: p.as_dict() for p in probes}, "heartbeats": []}
    database_up = data["reachability"]["database"]["ok"]
    if database_up:
        migrate(settings.database_url)
        engine = engine_for(settings.database_url)
        with session_scope(engine) as s:
            data["heartbeats"] = health.check_heartbeats(s, settings.heartbeat_stale_seconds)
        with Session(engine) as s:
            if args.batch is not None:
                batch = s.get(Batch, args.batch)
                if batch is None:
                    _err(f"error: batch {args.batch} does not exist")
                    return EXIT_USAGE
                data |= {"batch": status.batch_summary(s, batch),
                         "gas_per_credential": status.gas_per_credential(s, batch.id),
                         "fees": status.fee_panel(s, settings)}
            else:
                batches = s.execute(select(Batch).order_by(Batch.id.desc()).limit(20)).scalars().all()
                data |= {"batches": [status.batch_summary(s, b) for b in batches], "signers": status.signer_panel(s),
                         "indexer": status.indexer_panel(s), "fees": status.fee_panel(s, settings),
                         "alerts": [{"kind": a.kind, "message": a.message} for a in open_alerts(s)],
                         "reconciliation": status.reconciliation(s, settings.missing_event_blocks)}
    down = [f"{p.component} unreachable" for p in probes if not p.ok] + [
        f"{b['component']} silent (last report {b['age']})" for b in data["heartbeats"] if b["stale"]]
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        _print_status(data)
    if down:
        _err(f"status: {', '.join(down)} (exit {EXIT_DOWN})")
        return EXIT_DOWN
    return EXIT_OK


def _print_status(data: dict) -> None:
    from blockproof import status

    for name, probe in data["reachability"].items():
        print(f"{name:<9} {'reachable' if probe['ok'] else 'UNREACHABLE':<12} {probe['detail']}  ({probe['target']})")
    beats = {(b["component"], b["subject"]): b for b in data["heartbeats"]}
    for b in [data["batch"]] if "batch" in data else data.get("batches", []):
        held = "  PAUSED" if b["paused"] else (f"  ON HOLD: {b['on_hold']}" if b["on_hold"] else "")
        due = f"  deadline {b['deadline'][:19]} UTC" if b.get("deadline") else ""
        print(f"batch {b['id']:>5}  {b['kind']:<6} {b['filename'][:40]:<40} {b['progress']}  fees "
              f"{status.eth(b['fees_paid_wei'])} ({status.eth(b['fee_per_credential_wei'])} per credential){due}{held}")
    if data.get("fees"):
        f = data["fees"]
        budgets = "".join(f"  {name} budget {status.eth(f[key])}" for name, key in
                          (("daily", "daily_budget_wei"), ("batch", "batch_budget_wei"), ("per-transaction", "max_tx_fee_wei"))
                          if f[key])
        print(f"fees     paid {status.eth(f['paid_wei'])} (L1 data {status.eth(f['l1_paid_wei'])}), "
              f"{status.eth(f['fee_per_credential_wei'])} per credential; today (UTC) "
              f"{status.eth(f['paid_today_wei'])} paid + {status.eth(f['pending_worst_case_wei'])} pending at worst"
              f"{budgets}")
    for signer in data.get("signers", []):
        beat = beats.get(("signer", signer["address"]), {"age": "never", "stale": False})
        hold = f"  ON HOLD: {signer['hold_reason']}" if signer["hold_reason"] else ""
        print(f"signer {signer['address']}  heartbeat {beat['age']}{' (STALE)' if beat['stale'] else ''}  "
              f"balance {signer['balance_wei'] / 1e18:.4f} ETH  nonce local {signer['local_nonce']} / chain "
              f"{signer['chain_nonce']}  in flight {signer['in_flight']} (chain figures as of the heartbeat){hold}")
    if data.get("indexer"):
        ix = data["indexer"]
        beat = next((b for b in data["heartbeats"] if b["component"] == "consumer"), {"age": "never", "stale": False})
        print(f"consumer heartbeat {beat['age']}{' (STALE)' if beat['stale'] else ''}  head {ix['head']}  indexed "
              f"{ix['last_indexed']}  lag {ix['lag']} (as of the heartbeat)"
              + (f"  HALTED: {ix['halted_reason']}" if ix["halted_reason"] else ""))
    rec = data.get("reconciliation")
    if rec and (rec["mined_without_event_count"] or rec["events_without_job_count"]):
        print(f"reconciliation: {rec['mined_without_event_count']} mined job(s) without their event, "
              f"{rec['events_without_job_count']} event(s) without a job (details: --json)")
    for alert in data.get("alerts", []):
        _err(f"alert [{alert['kind']}]: {alert['message']}")


def cmd_signer(args) -> int:
    from blockproof.errors import ConfigurationError
    from workers.signer.main import run_signer

    from workers.signer.lease import LeaseHeld

    try:
        return run_signer(standby=args.standby, drain=args.drain)
    except ConfigurationError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except LeaseHeld as exc:
        _err(f"error: {exc} Stop it first, or start this one with --standby to take over when it stops.")
        return EXIT_ERROR


def cmd_key(args) -> int:
    """Keystores for the signer, without ever printing a key."""
    import getpass
    import os
    from pathlib import Path

    from eth_account import Account
    from eth_utils import to_checksum_address

    if args.key_command == "address":
        try:
            print(to_checksum_address("0x" + json.loads(Path(args.file).read_text())["address"].removeprefix("0x")))
        except (OSError, ValueError, KeyError) as exc:
            _err(f"error: {args.file} is not a keystore ({exc.__class__.__name__})")
            return EXIT_USAGE
        return EXIT_OK
    out = Path(args.out)
    if out.exists():
        _err(f"error: {out} exists; not overwritten")
        return EXIT_USAGE
    if args.key_command == "new":
        account = Account.create()
    else:
        secret = getpass.getpass("private key (hex): ") if sys.stdin.isatty() else sys.stdin.readline()
        try:
            account = Account.from_key(secret.strip())
        except Exception:
            _err("error: that is not a private key (64 hex digits); the value is not shown")
            return EXIT_USAGE
    if args.password_file:
        password = Path(args.password_file).read_text().rstrip("\n")
    else:
        password = getpass.getpass("keystore password: ")
        if password != getpass.getpass("again: "):
            _err("error: the passwords differ")
            return EXIT_USAGE
    if len(password) < 8:
        _err("error: choose a password of at least 8 characters")
        return EXIT_USAGE
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(Account.encrypt(account.key, password), handle)
    print(account.address)
    _err(f"keystore written to {out}: set BLOCKPROOF_SIGNER_KEYSTORE={out} and BLOCKPROOF_SIGNER_PASSWORD_FILE")
    return EXIT_OK


def cmd_consumer(args) -> int:
    from workers.consumer.follower import resync_from
    from workers.consumer.main import run_consumer

    settings, engine = _context()
    if args.resync_from is not None:
        resync_from(engine, args.resync_from)
        _err(f"consumer checkpoint moved back to block {args.resync_from}; events after it will be ingested again")
        return EXIT_OK
    from blockproof.errors import ConfigurationError

    try:
        run_consumer(settings)
    except ConfigurationError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    return EXIT_OK


def cmd_retry(args) -> int:
    from sqlmodel import Session

    from producers.retry import retry_jobs, retryable_ids

    settings, engine = _context()
    ids = list(args.job or [])
    if args.batch is not None:
        with Session(engine) as s:
            ids += retryable_ids(s, batch_id=args.batch)
    if not ids:
        _err("nothing to retry")
        return EXIT_OK
    result = retry_jobs(ids, settings=settings, engine=engine)
    _err(f"{len(result.requeued)} re-queued, {len(result.already_on_chain)} already on chain (not re-sent), "
         f"{len(result.skipped)} not failed (left alone)")
    return EXIT_OK


def cmd_revoke(args) -> int:
    from pathlib import Path

    from producers.console import EXIT_USAGE, print_row_errors, revoke_exit_code
    from producers.records import CsvFileError
    from producers.revocations import RevocationRequest, revoke, revoke_file

    if (args.credential is None) == (args.file is None):
        _err("error: give a credential id (with --reason) or --file CSV, not both")
        return EXIT_USAGE
    if args.file is None and not args.reason:
        _err("error: --reason is required when revoking one credential")
        return EXIT_USAGE
    if args.file is not None and not Path(args.file).is_file():
        return _file_error(args, f"{args.file} does not exist or is not a file", EXIT_USAGE)
    settings, engine = _context()
    try:
        if args.file is not None:
            report = revoke_file(args.file, settings=settings, engine=engine, filename=Path(args.file).name,
                                 dry_run=args.dry_run, reject_on_invalid=args.reject_on_invalid)
        else:
            report = revoke([RevocationRequest(line=1, reason=args.reason, credential_id=args.credential)],
                            settings=settings, engine=engine, dry_run=args.dry_run)
    except CsvFileError as exc:
        return _file_error(args, str(exc), EXIT_INVALID)
    if args.errors_out and args.file is not None:
        _write_errors(args.file, report.errors, args.errors_out)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    if args.file is None:
        for e in report.errors:
            _err(f"error: credential {e.value} {e.reason}")
    else:
        print_row_errors(report.errors, len(report.errors))
    outcome = ("dry run, nothing written" if report.dry_run else "rejected, nothing written" if report.rejected
               else f"batch {report.batch_id}, {report.queued} queued" if report.batch_id else "nothing queued")
    _err(f"{report.requested} requested: {report.created} to revoke, {report.already_requested} requested before, "
         f"{report.invalid} invalid ({outcome})")
    return revoke_exit_code(report)


def cmd_verify(args) -> int:
    from blockproof.errors import RpcError, RpcUnavailable
    from blockproof.verify import credential_status

    settings, engine = _context()
    try:
        result = credential_status(args.credential_id, fingerprint=args.fingerprint, settings=settings, engine=engine)
    except (RpcUnavailable, RpcError) as exc:
        _err(f"error: credential {args.credential_id} is not in the database and the chain could not be asked: {exc}")
        return EXIT_ERROR
    print(json.dumps(result, indent=2))
    _err(f"{result['verdict']}: {result['reason']}")
    return EXIT_OK if result["verdict"] == "valid" else EXIT_INVALID


def _fingerprint_argument(text: str) -> str:
    from blockproof.verify import InvalidFingerprint, parse_fingerprint

    try:
        return parse_fingerprint(text)
    except InvalidFingerprint as exc:
        raise argparse.ArgumentTypeError(str(exc))


def _credential_id_argument(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"credential id {text[:40]!r} is not valid: it is a whole number (1, 2, 3, …)")
    return int(text)


def _cli_actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


def cmd_pause(args) -> int:
    from blockproof.errors import NotFound
    from producers.batch_control import set_paused

    settings, engine = _context()
    try:
        set_paused(args.batch, args.command == "pause", engine=engine, actor=_cli_actor())
    except NotFound as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    _err(f"batch {args.batch} " + ("paused: its unsent jobs wait until `blockproof resume`" if args.command == "pause"
                                   else "resumed"))
    return EXIT_OK


def cmd_cancel(args) -> int:
    from blockproof.errors import NotFound
    from producers.batch_control import cancel

    settings, engine = _context()
    try:
        result = cancel(args.batch, engine=engine, actor=_cli_actor())
    except NotFound as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    _err(f"batch {args.batch}: {result.cancelled} job(s) cancelled (never sent)"
         + (f"; {result.already_sent} already sent finish on chain" if result.already_sent else ""))
    return EXIT_OK


def cmd_requeue(args) -> int:
    from producers.upload import enqueue_batch

    settings, engine = _context()
    n = enqueue_batch(args.batch, settings=settings, engine=engine, include_queued=True)
    _err(f"{n} job(s) published again")
    return EXIT_OK


def cmd_export(args) -> int:
    import os

    from blockproof.errors import ConfigurationError, NotFound
    from producers.export import iter_documents_zip, iter_results_csv

    if args.zip and not args.out and sys.stdout.isatty():
        _err("error: a ZIP is binary: give --out FILE (or redirect stdout to a file)")
        return EXIT_USAGE
    settings, engine = _context()
    make = iter_documents_zip if args.zip else iter_results_csv
    try:
        chunks = make(args.batch, settings=settings, engine=engine)
    except NotFound as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except ConfigurationError as exc:  # the document store cannot be read: the message names what to fix
        _err(f"error: {exc}")
        return EXIT_ERROR
    from models.audit import record

    record(engine, _cli_actor(), "batch.export", f"batch {args.batch}", file=args.out or "stdout", zip=args.zip)
    if not args.out:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return EXIT_OK
    partial = f"{args.out}.partial"  # a half-written export never stands under the name asked for
    try:
        with open(partial, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(partial, args.out)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    _err(f"batch {args.batch}: {'credential documents' if args.zip else 'results'} written to {args.out}")
    return EXIT_OK


def cmd_chain(args) -> int:
    from blockproof.devchain_cli import chain_up

    return chain_up(port=args.port, block_time=args.block_time)


def cmd_alive(args) -> int:
    """Liveness for a container healthcheck: the worker's last report is fresh (exit 0), or not (exit 1)."""
    from sqlmodel import Session

    from blockproof.health import heartbeats, liveness
    from models.db import engine_for
    from models.states import utcnow

    from blockproof.settings import get_settings

    settings = get_settings()
    try:
        with Session(engine_for(settings.database_url)) as s:
            beats = heartbeats(s)
    except Exception as exc:  # noqa: BLE001 - the database is away: not alive as far as anyone can tell
        _err(f"{args.component}: database unreachable ({exc.__class__.__name__})")
        return EXIT_ERROR
    ok, line = liveness(beats, args.component, utcnow(), settings.heartbeat_stale_seconds,
                        subject=settings.signer_address if args.component == "signer" else "")
    (print if ok else _err)(line)
    return EXIT_OK if ok else EXIT_ERROR


def cmd_migrate(args) -> int:
    _context()
    _err("database schema is up to date")
    return EXIT_OK


def cmd_deploy(args) -> int:
    from blockproof.devchain_cli import deploy_to_dev_node
    from blockproof.settings import get_settings

    if not args.dev:
        from blockproof import admin
        from blockproof.errors import ConfigurationError

        try:
            return admin.deploy(sys.stdout, sys.stderr)
        except ConfigurationError as exc:
            _err(f"error: {exc}")
            return EXIT_USAGE
    return deploy_to_dev_node(get_settings().rpc_url)


def cmd_admin(args) -> int:
    from blockproof import admin
    from blockproof.errors import ConfigurationError, RpcError

    try:
        return admin.run(args.action, args, sys.stdout, sys.stderr)
    except ConfigurationError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except RpcError as exc:  # e.g. the estimate reverts: not the admin, unknown institution
        from contracts.errors import decode_revert

        reason = decode_revert(exc.data) if exc.data else None
        _err(f"error: the node refused {args.action}: {reason or exc}")
        return EXIT_ERROR


def cmd_demo(args) -> int:
    from blockproof.demo import run_demo

    return run_demo(csv_path=args.file, block_time=args.block_time)


def cmd_web(args) -> int:
    from web.app import serve

    serve(host=args.host, port=args.port)
    return EXIT_OK


def cmd_user(args) -> int:
    """People who log in to the web UI (web/people.py); every change is audited as cli:<login>."""
    from models.audit import record
    from web import people, throttle

    settings, engine = _context()
    actor = _cli_actor()
    try:
        if args.action == "list":
            rows = people.listing(engine)
            if args.json:
                print(json.dumps(rows, indent=2))
            for r in rows if not args.json else []:
                state = "disabled" if r["disabled"] else f"locked until {r['locked_until']}" if r["locked_until"] \
                    else "one-time password" if r["must_change_password"] else "active"
                print(f"{r['name']:<24} {r['role']:<9} {state:<20} last login {r['last_login_at'] or 'never'}, "
                      f"{r['tokens']} token(s)")
            return EXIT_OK
        if args.action == "add":
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
            password = people.add(engine, args.name, args.role, by=actor, password=password)
            record(engine, actor, "user.add", args.name, role=args.role)
            if not args.password_stdin:
                _err(f"{args.name} ({args.role}) added; one-time password, shown only now (changed at the first "
                     "login):")
                print(password)
            else:
                _err(f"{args.name} ({args.role}) added")
        elif args.action == "reset-password":
            password = people.reset_password(engine, args.name)
            record(engine, actor, "user.reset-password", args.name)
            _err(f"{args.name}: sessions ended; new one-time password, shown only now:")
            print(password)
        elif args.action in ("disable", "enable"):
            people.set_disabled(engine, args.name, args.action == "disable")
            record(engine, actor, f"user.{args.action}", args.name)
            _err(f"{args.name} {args.action}d" + (": sessions ended, tokens stop working" if args.action == "disable"
                                                 else ""))
        elif args.action == "unlock":
            if not (args.name or args.ip):
                raise people.PeopleError("name the account (blockproof user unlock NAME) or the address (--ip)")
            key = f"ip:{args.ip}" if args.ip else f"user:{args.name}"
            lifted = throttle.lift(engine, key)
            record(engine, actor, "lock.lift", key, lifted=lifted)
            _err(f"{key}: " + ("lock lifted" if lifted else "was not locked"))
    except people.PeopleError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    return EXIT_OK


def cmd_token(args) -> int:
    """API tokens (web/tokens.py) made on the server, e.g. for a Prometheus scraper."""
    from models.audit import record
    from web import people, tokens

    settings, engine = _context()
    try:
        if args.action == "create":
            raw, view = tokens.create(engine, args.user, scope=args.scope, label=args.label or "",
                                      days=args.days or settings.token_days)
            record(engine, _cli_actor(), "token.create", f"token {view['id']}", owner=args.user, scope=args.scope)
            _err(f"token {view['id']} for {args.user} ({args.scope}, expires {view['expires_at']}); shown only now:")
            print(raw)
        elif args.action == "list":
            rows = tokens.listing(engine, args.user)
            if args.json:
                print(json.dumps(rows, indent=2))
            for t in rows if not args.json else []:
                print(f"{t['id']:>5} {t['prefix']}… {t['owner']:<20} {t['scope']:<8} {t['state']:<8} "
                      f"expires {t['expires_at']}, last used {t['last_used_at'] or 'never'} {t['label']}")
        else:
            tokens.revoke(engine, args.id)
            record(engine, _cli_actor(), "token.revoke", f"token {args.id}")
            _err(f"token {args.id} revoked")
    except people.PeopleError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blockproof", description="Issue academic credentials on chain in bulk.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    u = sub.add_parser("upload", help="validate a graduation-list CSV and queue its rows",
                       description="Validate every row, check it against the database and the chain, pre-flight the "
                       "contract rules, then write and queue the new rows (docs/csv-format.md).",
                       epilog="exit codes: 0 ok; 1 error (nothing written, or written but not all queued: see the "
                       "message); 2 usage; 3 validation failed (nothing written); 4 valid rows queued, some rows "
                       "invalid; 130 interrupted")
    u.add_argument("file")
    u.add_argument("--institution", help="institution address (else the file's institution column)")
    u.add_argument("--dry-run", action="store_true", help="report only: write and queue nothing")
    u.add_argument("--errors-out", metavar="FILE", help="write every invalid row to this CSV")
    u.add_argument("--reject-on-invalid", action="store_true", help="queue nothing if any row is invalid")
    u.add_argument("--no-chain-check", action="store_true", help="skip the fingerprintUsed check on chain")
    u.add_argument("--queue-while-blocked", action="store_true",
                   help="queue even when the pre-flight says the contract would refuse now (the signer holds the jobs)")
    u.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    u.add_argument("--deadline", metavar="WHEN",
                   help="the batch must be issued by then: a duration (90m, 2h, 1d) or a time (2026-12-01T18:00, "
                        "UTC unless an offset is given); the signer leaves the fee-saving pace as far as it needs, "
                        "and the summary says what that costs")
    u.set_defaults(func=cmd_upload)

    st = sub.add_parser("status", help="batches, signer and indexer at a glance",
                        description="Live reachability of the node, the broker and the database, each worker's "
                        "heartbeat age, batches, signer and indexer figures, open alerts.",
                        epilog="exit codes: 0 everything answers; 2 usage; 5 the node, the broker or the database "
                        "is unreachable, or a worker's heartbeat is older than BLOCKPROOF_HEARTBEAT_STALE_SECONDS")
    st.add_argument("batch", nargs="?", type=int)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    k = sub.add_parser("key", help="encrypted keystores for the signer (the key itself is never printed)")
    ks = k.add_subparsers(dest="key_command", required=True)
    for name, text in (("new", "create a new key in an encrypted keystore"),
                       ("import", "encrypt an existing hex key (read from the terminal or stdin) into a keystore")):
        kp = ks.add_parser(name, help=text)
        kp.add_argument("--out", required=True, metavar="FILE")
        kp.add_argument("--password-file", metavar="FILE", help="else asked twice on the terminal")
    ka = ks.add_parser("address", help="the address of a keystore")
    ka.add_argument("file")
    k.set_defaults(func=cmd_key)
    sg = sub.add_parser("signer", help="run the signer worker (one per key; a second one for the same key is refused)")
    sg.add_argument("--standby", action="store_true",
                    help="wait while another signer holds this key's lease, and take over when it stops or dies")
    sg.add_argument("--drain", action="store_true",
                    help="take no new jobs, finish what is in flight, then exit (before retiring a key)")
    sg.set_defaults(func=cmd_signer)
    c = sub.add_parser("consumer", help="run the event consumer")
    c.add_argument("--resync-from", type=int, metavar="BLOCK", help="after a deep-reorg alert: re-ingest after BLOCK")
    c.set_defaults(func=cmd_consumer)

    r = sub.add_parser("retry", help="retry failed or dead jobs (checks the chain first)")
    r.add_argument("--job", type=int, action="append", help="a job id (repeatable)")
    r.add_argument("--batch", type=int, help="every failed or dead job of this batch")
    r.set_defaults(func=cmd_retry)

    rv = sub.add_parser("revoke", help="revoke a credential, or every credential listed in a CSV (--file)")
    rv.add_argument("credential", type=int, nargs="?")
    rv.add_argument("--reason", help="why (required for one credential; a CSV has a reason column)")
    rv.add_argument("--file", metavar="CSV", help="credential ids or fingerprints with reasons (docs/csv-format.md)")
    rv.add_argument("--dry-run", action="store_true", help="report only: write and queue nothing")
    rv.add_argument("--errors-out", metavar="FILE", help="write every invalid row of the CSV to this file")
    rv.add_argument("--reject-on-invalid", action="store_true", help="queue nothing if any row is invalid")
    rv.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    rv.set_defaults(func=cmd_revoke)

    v = sub.add_parser("verify", help="is credential N valid (and does this fingerprint match)?")
    v.add_argument("credential_id", type=_credential_id_argument)
    v.add_argument("--fingerprint", type=_fingerprint_argument, help="0x + 64 hex digits; must be the credential's")
    v.set_defaults(func=cmd_verify)

    for name, text in (("pause", "pause a batch: the signer sends none of its jobs until resumed"),
                       ("resume", "resume a paused batch")):
        ps = sub.add_parser(name, help=text)
        ps.add_argument("batch", type=int)
        ps.set_defaults(func=cmd_pause)
    cn = sub.add_parser("cancel", help="cancel a batch: its jobs not yet sent end `cancelled`; sent ones finish")
    cn.add_argument("batch", type=int)
    cn.set_defaults(func=cmd_cancel)
    rq = sub.add_parser("requeue", help="publish a batch's unsent jobs again (after a broker outage)")
    rq.add_argument("batch", type=int)
    rq.set_defaults(func=cmd_requeue)

    ex = sub.add_parser("export", help="a batch's results as CSV (or --zip: the graduates' credential documents)",
                        description="Results of an issue batch for mail merge: line, student id, name, wallet, "
                        "credential id, fingerprint, transaction, block, state, verification link (spreadsheet-safe "
                        "CSV). --zip: a ZIP with each issued credential's document, named by student id.")
    ex.add_argument("batch", type=int)
    ex.add_argument("--zip", action="store_true", help="the credential documents instead of the CSV")
    ex.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    ex.set_defaults(func=cmd_export)

    ch = sub.add_parser("chain", help="start a local dev chain, deploy the contract, write var/dev.env")
    ch.add_argument("--port", type=int, default=8545)
    ch.add_argument("--block-time", type=float, default=1.0)
    ch.set_defaults(func=cmd_chain)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    al = sub.add_parser("alive", help="exit 0 when the signer's or consumer's last report is fresh (healthchecks)")
    al.add_argument("component", choices=["signer", "consumer"])
    al.set_defaults(func=cmd_alive)
    dp = sub.add_parser("deploy", help="deploy the contract with BLOCKPROOF_ADMIN_KEY on BLOCKPROOF_CHAIN_ID "
                                       "(--dev: to a dev node with Anvil's accounts, writing var/dev.env)")
    dp.add_argument("--dev", action="store_true", help="use Anvil's well-known dev accounts")
    dp.set_defaults(func=cmd_deploy)

    ad = sub.add_parser("admin", help="the contract's admin calls, sent with BLOCKPROOF_ADMIN_KEY or printed as "
                                      "unsigned calldata for a multisig (--print-calldata)")
    actions = ad.add_subparsers(dest="action", required=True)
    for name, text in (("register-institution", "register (or rename) an institution, active"),
                       ("add-controller", "allow a signer to issue for an institution"),
                       ("remove-controller", "stop a signer issuing for an institution"),
                       ("pause", "pause all issuance and revocation on the contract"),
                       ("unpause", "resume them"),
                       ("transfer-admin", "propose a new admin (it accepts with accept-admin)"),
                       ("accept-admin", "accept a proposed admin transfer (run as the new admin)")):
        a = actions.add_parser(name, help=text)
        if name in ("register-institution", "add-controller", "remove-controller"):
            a.add_argument("--institution", required=True, help="the institution's address")
        if name == "register-institution":
            a.add_argument("--name", required=True)
        if name in ("add-controller", "remove-controller"):
            a.add_argument("--controller", required=True, help="the signer's address")
        if name == "transfer-admin":
            a.add_argument("--to", required=True, help="the new admin's address (a Safe, say)")
        a.add_argument("--print-calldata", action="store_true",
                       help="print the unsigned calls (to, data, value) as JSON for a Safe; send nothing")
        a.set_defaults(func=cmd_admin)

    d = sub.add_parser("demo", help="the whole pipeline on a local dev chain, end to end")
    d.add_argument("--file", default="examples/graduates.csv")
    d.add_argument("--block-time", type=float, default=1.0)
    d.set_defaults(func=cmd_demo)

    us = sub.add_parser("user", help="people who log in to the web UI: add, disable, enable, reset-password, "
                                     "unlock, list")
    usa = us.add_subparsers(dest="action", required=True)
    ua = usa.add_parser("add", help="add a person; prints a one-time password they change at the first login")
    ua.add_argument("name")
    ua.add_argument("--role", choices=["viewer", "operator", "admin"], required=True)
    ua.add_argument("--password-stdin", action="store_true", help="read their password from stdin instead")
    for action, text in (("disable", "end their sessions; their tokens stop working"), ("enable", "enable again"),
                         ("reset-password", "end their sessions; print a new one-time password")):
        usa.add_parser(action, help=text).add_argument("name")
    uu = usa.add_parser("unlock", help="lift a login lockout of an account (or of an address: --ip)")
    uu.add_argument("name", nargs="?")
    uu.add_argument("--ip", help="the client address to unlock instead")
    usa.add_parser("list", help="everyone, with role, state and last login").add_argument("--json", action="store_true")
    us.set_defaults(func=cmd_user)

    tk = sub.add_parser("token", help="API tokens: create (printed once), list, revoke")
    tka = tk.add_subparsers(dest="action", required=True)
    tc = tka.add_parser("create", help="a token for a person's scripts (Authorization: Bearer)")
    tc.add_argument("--user", required=True)
    tc.add_argument("--scope", choices=["read", "operate"], required=True)
    tc.add_argument("--days", type=int, help="expires after this many days (default BLOCKPROOF_TOKEN_DAYS)")
    tc.add_argument("--label", help="what uses it")
    tl = tka.add_parser("list", help="tokens (never the tokens themselves), with last use")
    tl.add_argument("--user")
    tl.add_argument("--json", action="store_true")
    tka.add_parser("revoke", help="revoke a token by its id").add_argument("id", type=int)
    tk.set_defaults(func=cmd_token)

    w = sub.add_parser("web", help="serve the UI and HTTP API")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=8000)
    w.set_defaults(func=cmd_web)
    return p


def _broker_url() -> str | None:
    try:
        from blockproof.settings import get_settings

        return get_settings().broker_url
    except Exception:  # a bad setting is reported by the command that needs it
        return None


def _log_format() -> str:
    try:
        from blockproof.settings import get_settings

        return get_settings().log_format
    except Exception:
        return "text"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from blockproof import logs

    logs.configure(verbose=args.verbose, broker_url=_broker_url(), log_format=_log_format())
    from blockproof import publishing
    from workers.actors import publish_jobs

    publishing.register(publish_jobs)  # what uploads, retries and revocations publish through
    from blockproof.errors import ConfigurationError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except ConfigurationError as exc:
        _err(f"error: {exc}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

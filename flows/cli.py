"""The ``cleanse`` command line."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cleansing.errors import CleansingError, InternalError, UsageError, mask_text

if TYPE_CHECKING:
    from cleansing.pipeline import RunContext
    from cleansing.preflight import RunRequest

from .settings import configure_prefect

# What the parser needs, written out so that --help loads nothing heavy (a test holds these to the
# modules they come from).
DEFAULT_OUT = "out"
DEFAULT_STATE = "data/state/cleansing.sqlite"
PRESET_CHOICES = ["auto", "mailchimp", "hubspot", "salesforce", "brevo", "klaviyo", "generic"]

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2


def _input_options(command: argparse.ArgumentParser, *, dns: bool) -> None:
    """The options every command that reads exports shares."""
    command.add_argument("--policy", default=None, help="policy TOML (default: the bundled default policy)")
    command.add_argument(
        "--preset",
        default="auto",
        choices=PRESET_CHOICES,
        help="force a source preset (default: auto, detected per file)",
    )
    command.add_argument("--mapping", default=None, help="TOML mapping of source headers to canonical fields")
    command.add_argument(
        "--state", default=str(DEFAULT_STATE), help="the state database (default: data/state/cleansing.sqlite)"
    )
    if dns:
        command.add_argument(
            "--dns-server",
            action="append",
            default=[],
            metavar="HOST[:PORT]",
            help="resolver to ask, repeatable (default: the system's)",
        )
        command.add_argument("--no-mx", action="store_true", help="skip the domain check")


def _cluster_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--cluster",
        default=None,
        help="run the partition stages as tasks on a Dask cluster: local:N (N worker processes here) or a "
        "scheduler's address, tcp://HOST:8786 (default: one process)",
    )
    command.add_argument(
        "--partition-rows",
        type=int,
        default=None,
        help="rows per partition on a cluster; a worker needs about 3 KB per row (default: from the input's size)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cleanse",
        description="Cleanse contact exports for the GDPR: keep, reconfirm or discard every contact, with the reason.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the whole pipeline as the Prefect flow cleanse-contacts")
    run.add_argument("sources", nargs="*", help="export files, ZIPs or folders (default: the bundled sample)")
    run.add_argument("--out", default=str(DEFAULT_OUT), help="where run folders go (default: out/)")
    run.add_argument(
        "--as-of", default=None, help="the date the rules count ages from, YYYY-MM-DD (default: today, UTC)"
    )
    run.add_argument(
        "--set-latest",
        action="store_true",
        help="point OUT/latest at this run even if it reads other sources than the run latest points at "
        "(without it, a run over other sources is published but leaves latest and the nightly's comparison alone)",
    )
    _cluster_options(run)
    _input_options(run, dns=True)

    dedupe = commands.add_parser("dedupe", help="only read, map, validate and dedupe: one row per input row")
    dedupe.add_argument("sources", nargs="+", help="export files, ZIPs or folders")
    dedupe.add_argument("--out", required=True, help="the output file, .csv or .parquet")
    dedupe.add_argument("--review", default=None, help="also write the review list to this .csv or .parquet file")
    _input_options(dedupe, dns=False)

    serve = commands.add_parser("serve", help="register the nightly deployment and serve it (needs a Prefect server)")
    serve.add_argument("sources", nargs="*", help="the nightly sources (default: the bundled sample)")
    serve.add_argument("--cron", default=None, help="when to run (default: the policy's schedule, 0 2 * * *)")
    serve.add_argument("--timezone", default=None, help="time zone of the schedule (default: the policy's)")
    serve.add_argument("--out", default=str(DEFAULT_OUT), help="where run folders go (default: out/)")
    _cluster_options(serve)
    _input_options(serve, dns=True)

    access = commands.add_parser("access", help="what is held about a person (right of access): for the person")
    access.add_argument("email", help="the person's email address")
    access.add_argument("--state", default=str(DEFAULT_STATE), help="the state database")
    access.add_argument("--json", action="store_true", help="one JSON object on stdout")

    sent = commands.add_parser("reconfirm-sent", help="record that a run's reconfirm list was mailed (ask once)")
    sent.add_argument("run_dir", help="the run folder whose reconfirm.csv was mailed, e.g. out/latest")
    sent.add_argument("--on", default=None, help="the day it was sent, YYYY-MM-DD (default: today, UTC)")
    sent.add_argument("--state", default=str(DEFAULT_STATE), help="the state database")

    alerts = commands.add_parser(
        "alerts",
        help="post to a webhook when a run fails, crashes, is late or ends in a warning (needs a Prefect server)",
    )
    alerts.add_argument("--webhook", required=True, help="the URL to POST to (a chat or pager webhook)")

    forget = commands.add_parser("forget", help="add addresses to the suppression list (erasure or objection)")
    forget.add_argument("emails", nargs="*", help="email addresses")
    forget.add_argument("--file", default=None, help="a text file with one address per line")
    forget.add_argument("--state", default=str(DEFAULT_STATE), help="the state database")

    for name, says in (("link", "are one person"), ("unlink", "are two people")):
        decide = commands.add_parser(name, help=f"record that two records {says}; every later run honours it")
        decide.add_argument("record_a", help="a record id (record_id in the outputs and in review.csv)")
        decide.add_argument("record_b", help="the other record id")
        decide.add_argument("--state", default=str(DEFAULT_STATE), help="the state database")

    report = commands.add_parser("report", help="rebuild the report of a finished run")
    report.add_argument("run_dir", help="a run folder, e.g. out/latest")
    return parser


def _progress(name: str, ctx: RunContext, seconds: float) -> None:
    rows = ctx.read.rows_in if name == "read" else ctx.rows
    print(f"  {name:<9} {rows:>10,} rows  {seconds:7.2f} s", file=sys.stderr, flush=True)


def _partition_progress(stage: str, done: int, tasks: int, count: int, unit: str) -> None:
    print(f"  {stage:<9} {count:>10,} {unit:<5} {done} of {tasks} tasks", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from cleansing.preflight import RunRequest, check_config, check_inputs, check_output, parse_as_of

    request = RunRequest(
        sources=tuple(args.sources),
        preset=args.preset,
        mapping=args.mapping,
        policy=args.policy,
        as_of=parse_as_of(args.as_of),
        out_dir=args.out,
        state=args.state,
        check_mx=not args.no_mx,
        dns_servers=tuple(args.dns_server),
        set_latest=args.set_latest,
        cluster=args.cluster,
        partition_rows=args.partition_rows,
    )
    # Bad configuration, an unusable output folder and unusable inputs fail here, before Prefect starts.
    check_config(request)
    for warning in check_inputs(request):
        print(f"warning: {warning}", file=sys.stderr)
    check_output(Path(request.out_dir))
    configure_prefect()
    with _stopped_by_signals():
        return _run_flow(request, args)


class PublishedThenFailed(CleansingError):
    """The run folder and state were committed; something after that (the Prefect artifacts) failed."""


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM: the run stops where it is, as after Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def _stopped_by_signals(*signals: signal.Signals) -> Iterator[None]:
    """``signals`` (SIGINT and SIGTERM unless named) raise ``Stopped`` at once wherever the command is."""
    previous = {s: signal.signal(s, _raise_stopped) for s in signals or (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run_flow(request: RunRequest, args: argparse.Namespace) -> int:
    from .server import TemporaryServer

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        server = None
        if not os.environ.get("PREFECT_API_URL"):
            # Started before Prefect and the pipeline are imported, so that it boots meanwhile.
            server = TemporaryServer()
            stack.callback(server.stop)
            server.start()
        from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        from . import cleanse as flow_module

        flow_module.terminal_progress = _progress
        flow_module.partition_progress = _partition_progress
        flow_module.current.clear()
        if server is not None and PREFECT_API_URL.value():  # a server configured in a Prefect profile
            server.stop()
            server = None
        if server is not None:
            print("cleanse-contacts: starting a temporary Prefect server", file=sys.stderr, flush=True)
            server.wait_healthy()
            # Heartbeats tell a lasting server that a run crashed; this one ends with the command, and
            # joining the heartbeat thread would cost up to a second at the end of the run.
            updates = {PREFECT_API_URL: server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
            stack.enter_context(temporary_settings(updates=updates))
        print("cleanse-contacts: starting", file=sys.stderr, flush=True)
        try:
            run_dir = flow_module.cleanse_contacts(
                sources=list(request.sources),
                preset=args.preset,
                policy=args.policy,
                as_of=request.as_of,
                out_dir=args.out,
                check_domains=not args.no_mx,
                mapping=args.mapping,
                state=args.state,
                dns_servers=list(args.dns_server),
                set_latest=args.set_latest,
                cluster=args.cluster,
                partition_rows=args.partition_rows,
            )
        except Stopped as stop:
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C does not cut the clean-up short
            return _stopped(stop, flow_module.current, Path(args.out))
        except Exception as exc:
            run_id = flow_module.current.get("run_id")
            if run_id and (Path(args.out) / run_id).is_dir():  # failed after publishing: say so
                text = str(exc if isinstance(exc, CleansingError) else InternalError.of(exc))
                raise PublishedThenFailed(
                    f"the run was published ({Path(args.out) / run_id}), but the flow failed after that: "
                    f"{mask_text(text)}"
                ) from exc
            raise
        finally:
            _send_pending_logs()
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    counts = ", ".join(f"{k} {v:,}" for k, v in manifest["counts"].items())
    print(f"done in {time.perf_counter() - started:.1f} s: {counts}", file=sys.stderr)
    if manifest["dns"]["checked"]:
        print(f"domain check: {manifest['dns']['detail']}", file=sys.stderr)
    print(run_dir)
    return EXIT_OK


def _send_pending_logs() -> None:
    """Hand Prefect's queued run logs to its API while the server is still there."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=5)


def _stopped(stop: Stopped, current: dict[str, str], out: Path) -> int:
    """Mark the flow run Cancelled and say in one line what was and was not published."""
    name = signal.Signals(stop.signum).name
    flow_run_id = current.get("flow_run_id")
    if flow_run_id:
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelled

        try:
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(flow_run_id, Cancelled(message=f"stopped by {name}"), force=True)
        except Exception as exc:  # the API is gone too: say so rather than claim it was marked
            print(f"warning: the flow run could not be marked cancelled ({type(exc).__name__}).", file=sys.stderr)
    run_id = current.get("run_id")
    if run_id and (out / run_id).is_dir():
        print(f"stopped by {name} after the run was published: {out / run_id}", file=sys.stderr)
    else:
        print(f"stopped by {name}: the run was cancelled and nothing was published.", file=sys.stderr)
    return 128 + stop.signum


def cmd_dedupe(args: argparse.Namespace) -> int:
    from cleansing.pipeline import dedupe_only
    from cleansing.preflight import RunRequest, check_output

    request = RunRequest(
        sources=tuple(args.sources),
        preset=args.preset,
        mapping=args.mapping,
        policy=args.policy,
        state=args.state,
        check_mx=False,
    )
    check_output(Path(args.out), file=True)
    review = Path(args.review) if args.review else None
    if review is not None:
        check_output(review, file=True)
    out = dedupe_only(request, Path(args.out), _progress, review)
    clusters = out["cluster_id"].drop_nulls().n_unique()
    print(f"{out.height:,} rows in {clusters:,} clusters", file=sys.stderr)
    print(args.out)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from cleansing.policy import load_policy
    from cleansing.preflight import check_cluster

    check_cluster(args.cluster, args.partition_rows)
    policy = load_policy(args.policy).policy
    for source in args.sources:
        if not Path(source).exists():
            raise UsageError(
                "the path does not exist.", path=source, fix="Pass the folder or files the nightly run should read."
            )
    configure_prefect(quiet=False)
    from .serve import serve

    absolute = [str(Path(s).resolve()) for s in args.sources]
    parameters = {
        "sources": absolute,
        "preset": args.preset,
        "policy": str(Path(args.policy).resolve()) if args.policy else None,
        "out_dir": str(Path(args.out).resolve()),
        "check_domains": not args.no_mx,
        "mapping": str(Path(args.mapping).resolve()) if args.mapping else None,
        "state": str(Path(args.state).resolve()),
        "dns_servers": list(args.dns_server),
        "cluster": args.cluster,
        "partition_rows": args.partition_rows,
    }
    # Left to asyncio, the first Ctrl-C only cancels the serving task, which Prefect's runner can absorb
    # while it polls: the command then went on serving. (SIGTERM is Prefect's own to handle.)
    with _stopped_by_signals(signal.SIGINT):
        serve(parameters, args.cron or policy.schedule.cron, args.timezone or policy.schedule.timezone)
    return EXIT_OK


def cmd_forget(args: argparse.Namespace) -> int:
    from cleansing.forget import forget

    emails = list(args.emails)
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise UsageError("the file does not exist.", path=path, fix="Pass a text file with one address per line.")
        emails += [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not emails:
        raise UsageError("no addresses were given.", fix="Pass addresses as arguments or with --file.")
    added, known, erased = forget(emails, args.state)
    print(f"{added} address(es) added to the suppression list, {known} already on it.", file=sys.stderr)
    print(f"{erased.rows} record(s) removed from {len(erased.removed)} run folder(s).", file=sys.stderr)
    for folder, why in erased.failed.items():
        print(f"error: {folder}: could not be rewritten ({why}); run cleanse forget again to finish.", file=sys.stderr)
    return EXIT_INTERNAL if erased.failed else EXIT_OK


def cmd_decide(args: argparse.Namespace) -> int:
    """``cleanse link A B`` / ``cleanse unlink A B``: a person's decision, kept by record id only."""
    from cleansing.state import StateStore

    first, second = args.record_a.strip(), args.record_b.strip()
    if not first or not second or first == second:
        raise UsageError("two different record ids are needed.", fix="Pass the record_id of each of the two records.")
    StateStore(args.state).decide(first, second, args.command)
    verdict = "one person" if args.command == "link" else "two people"
    print(f"recorded: {first} and {second} are {verdict}; every later run honours it.", file=sys.stderr)
    return EXIT_OK


def cmd_access(args: argparse.Namespace) -> int:
    """Everything held about the person, on stdout only: nothing is logged."""
    from cleansing.access import access, as_text

    answer = access(args.email, args.state)
    print(json.dumps(answer, ensure_ascii=False, indent=2, default=str) if args.json else as_text(answer))
    return EXIT_OK


def cmd_reconfirm_sent(args: argparse.Namespace) -> int:
    from cleansing.preflight import parse_as_of
    from cleansing.reconfirm import reconfirm_sent

    recorded, refused = reconfirm_sent(Path(args.run_dir), parse_as_of(args.on), args.state)
    print(
        f"{recorded} reconfirmation(s) recorded as sent; {refused} address(es) already asked since the list was "
        "made were not recorded again.",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    if not args.webhook.startswith(("http://", "https://")):
        raise UsageError("the webhook is not an http(s) URL.", path=args.webhook, fix="Pass the URL to POST to.")
    configure_prefect(quiet=False)
    from .serve import DEFAULT_API_URL, check_server

    check_server(os.environ.setdefault("PREFECT_API_URL", DEFAULT_API_URL))
    from .alerts import install_alerts

    made = install_alerts(args.webhook)
    print(
        f"automation {made['automation']!r} posts to the block {made['block']!r} when a run fails, crashes, "
        "is late or ends in a warning.",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from cleansing.rebuild import rebuild_report

    path = rebuild_report(Path(args.run_dir))
    print(path)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "run": cmd_run,
        "dedupe": cmd_dedupe,
        "serve": cmd_serve,
        "forget": cmd_forget,
        "link": cmd_decide,
        "unlink": cmd_decide,
        "report": cmd_report,
        "alerts": cmd_alerts,
        "access": cmd_access,
        "reconfirm-sent": cmd_reconfirm_sent,
    }
    try:
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PublishedThenFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except InternalError as exc:
        print(f"internal error ({exc}). Nothing was published.", file=sys.stderr)
        return EXIT_INTERNAL
    except CleansingError as exc:
        print(f"error: {mask_text(str(exc))} Nothing was published.", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:  # an internal error: say so without the data it met, publish nothing
        print(f"internal error ({InternalError.of(exc)}). Nothing was published.", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    """The ``cleanse`` command: ``main``, then a prompt exit once everything it did is done.

    By the time ``main`` returns, the run folder is published, the state database committed and Prefect's
    queued logs and events sent. What Python would still do is run the exit handlers (which this does) and
    tear down the modules Prefect loaded, which takes 0.4–0.6 s and writes nothing. So, when no thread is
    left that Python would wait for, the process ends there."""
    code = main()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: leave it to the normal exit, which reports it as Python does
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    entry()

"""The `urok` command: serve, check a config, mint a join token, run a bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from rooms.lessons import Role
from signalling.config import ConfigError, Settings, load_settings, settings_from_mapping


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings given as `serve` options."""
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.public_url:
        overrides["public_url"] = args.public_url
    if args.redis_url is not None:
        overrides["redis_url"] = args.redis_url
    if args.trusted_proxy:
        overrides["limits"] = {"trusted_proxies": args.trusted_proxy}
    if args.ice_address or args.announced_address:
        ice: dict[str, object] = {}
        if args.ice_address:
            ice["addresses"] = args.ice_address
        if args.announced_address:
            ice["announced_address"] = args.announced_address
        overrides["ice"] = ice
    return overrides


def _serve(args: argparse.Namespace) -> int:
    from signalling.access_log import RedactingAccessLogger
    from signalling.app import create_app
    from signalling.log_format import configure_logging
    from signalling.serving import run

    settings = load_settings(args.config)
    settings = _public_url_follows_port(settings_from_mapping(_overrides(args), settings))
    if args.workers > 1 and args.worker is None:
        return _supervise(args, settings)
    configure_logging(settings.log)
    if settings.demo_journal and settings.host not in ("127.0.0.1", "::1", "localhost"):
        # The demo journal acts as the demo integration without credentials.
        logging.getLogger("urok").warning(
            "the demo journal is on while serving on %s: anyone who reaches this address can "
            "create and end demo lessons; set demo_journal = false in production",
            settings.host,
        )
    # web.run_app, with the connection limits and header timeout (signalling/http_guard.py).
    try:
        settings, options = _as_worker(args, settings)
        run(
            create_app(settings),
            settings,
            on_listening=lambda: _announce(settings, args.worker),
            access_log_class=RedactingAccessLogger,
            **options,
        )
    except OSError as exc:
        # A busy port or an address this machine lacks: one line, no traceback.
        reason = exc.strerror or str(exc)
        print(f"urok: cannot listen on {settings.host}:{settings.port}: {reason}", file=sys.stderr)
        return 1
    except Exception as exc:  # any start-up failure: one clean line
        print(f"urok: start-up failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _announce(settings: Settings, worker: int | None) -> None:
    media = ", ".join(settings.ice.addresses)
    if worker is None:
        print(f"Urok: {settings.public_url}/  (media on {media})", flush=True)
        return
    ports = settings.media.udp_ports
    udp = f" UDP {ports[0]}-{ports[1]}" if ports else ""
    print(
        f"Urok worker {worker}: node {settings.cluster.node_id}, internal "
        f"{settings.cluster.internal_url}, media on {media}{udp}",
        flush=True,
    )


def _as_worker(args: argparse.Namespace, settings: Settings) -> tuple[Settings, dict[str, Any]]:
    """A worker of `--workers N` (signalling/worker_settings.py): its own settings, the
    shared port, its internal listener. Anything else: as it is."""
    if args.worker is None:
        return settings, {}
    from signalling.node import default_node_id
    from signalling.serving import drain_when_orphaned, listen
    from signalling.worker_settings import internal_address, internal_url, worker_settings

    base = args.node_id_base or settings.cluster.node_id or default_node_id()
    host, port = internal_address(settings, args.worker)
    try:
        internal = listen(host, port)
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror or exc} (internal address {host}:{port})") from exc
    announced = internal_url(settings, host, internal.getsockname()[1])
    settings = worker_settings(settings, args.worker, args.workers, base, announced)
    drain_when_orphaned(os.getppid())
    return settings, {"reuse_port": True, "internal": internal}


def _supervise(args: argparse.Namespace, settings: Settings) -> int:
    """The parent of `--workers N` (signalling/workers.py)."""
    from signalling.log_format import configure_logging
    from signalling.node import default_node_id
    from signalling.worker_settings import check_workers
    from signalling.workers import (
        STOP_MARGIN_SECONDS,
        Supervisor,
        probe_port,
        worker_command,
        worker_env,
    )

    base = settings.cluster.node_id or default_node_id()
    check_workers(settings, args.workers, base)
    configure_logging(settings.log)
    try:
        probe_port(settings.host, settings.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"urok: cannot listen on {settings.host}:{settings.port}: {reason}", file=sys.stderr)
        return 1
    print(
        f"Urok: {settings.public_url}/  ({args.workers} workers on {settings.host}:"
        f"{settings.port}, nodes {base}-w0 to -w{args.workers - 1})",
        flush=True,
    )
    supervisor = Supervisor(
        lambda index: worker_command(args.argv, index, base),
        args.workers,
        env=worker_env(),
        stop_seconds=settings.drain_seconds + STOP_MARGIN_SECONDS,
    )
    return supervisor.run()


def _public_url_follows_port(settings: Settings) -> Settings:
    """The default public URL names the default port: follow a port given by flag or env."""
    if settings.port != 8080 and settings.public_url == "http://127.0.0.1:8080":
        return settings_from_mapping(
            {"public_url": f"http://{settings.host}:{settings.port}"}, settings
        )
    return settings


def _check_config(args: argparse.Namespace) -> int:
    """Validate FILE (with the UROK_* environment, as `serve` reads it) and say what it means."""
    from signalling.check_config import describe, warnings

    settings = _public_url_follows_port(load_settings(args.file))
    print(f"urok: {args.file} is valid; urok serve would run with:")
    for line in describe(settings):
        print(f"  {line}")
    for warning in warnings(settings):
        print(f"  warning: {warning}")
    return 0


def _token(args: argparse.Namespace) -> int:
    from signalling.tokens import TokenService

    settings = load_settings(args.config)
    now = datetime.now(UTC)
    token = TokenService(settings).mint(
        key_id=args.key_id,
        lesson_id=args.lesson,
        user_id=args.user,
        name=args.name,
        role=Role(args.role),
        now=now,
        expires_at=now + timedelta(minutes=args.minutes),
    )
    print(token)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from bench.load import main as bench_main

    return asyncio.run(bench_main(args.rest))


CONFIG_HELP = "TOML config file (default: $UROK_CONFIG, else the embedded defaults)"


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the server",
        description="Run the server. Options override the config file and UROK_* variables.",
    )
    # Also after `serve` (scripts/serve.sh passes its arguments here); SUPPRESS keeps
    # a --config given before `serve`.
    serve.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    serve.add_argument(
        "--host", help="address to listen on (default: the config's host, else 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, help="port to listen on (default: the config's port, else 8080)"
    )
    serve.add_argument(
        "--public-url",
        help="the address people open, used in links (default: the config's public_url, "
        "else http://HOST:PORT)",
    )
    serve.add_argument(
        "--ice-address",
        action="append",
        help="address to gather media candidates on (repeatable; default: ice.addresses, "
        "else 127.0.0.1)",
    )
    serve.add_argument(
        "--announced-address",
        help="public address announced for media (default: ice.announced_address, else none)",
    )
    serve.add_argument(
        "--redis-url",
        help="keep lessons and call state in Redis, shared by several nodes "
        "(redis://, rediss:// or unix://; default: $UROK_REDIS_URL, else in memory)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        help="reverse proxy address or network whose X-Forwarded-For is believed "
        "(repeatable; default: limits.trusted_proxies, else none)",
    )
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        help="node processes on this machine, sharing the port, each on a core of its own "
        "(needs Redis; docs/operations.md says how many; default: 1, this process alone)",
    )
    # A worker's own part, given by the parent of --workers N (signalling/workers.py).
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--node-id-base", help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)


def _worker_count(text: str) -> int:
    from signalling.worker_settings import MAX_WORKERS

    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{count} is not from 1 to {MAX_WORKERS}")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="urok", description="Video lessons for schools")
    parser.add_argument("--config", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)

    check = sub.add_parser(
        "check-config", help="validate a config file and print what it would do, start nothing"
    )
    check.add_argument("file")
    check.set_defaults(func=_check_config)

    token = sub.add_parser("token", help="mint a join token with an integration key")
    token.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    token.add_argument("--key-id", default="demo")
    token.add_argument("--lesson", required=True)
    token.add_argument("--user", required=True)
    token.add_argument("--name", required=True)
    token.add_argument("--role", choices=[r.value for r in Role], default="student")
    token.add_argument("--minutes", type=int, default=60)
    token.set_defaults(func=_token)

    bench = sub.add_parser("bench", help="load-test a running server (see bench/)")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_bench)

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        # Everything after `bench` belongs to the bench (argparse's REMAINDER
        # would refuse options such as --publishers).
        return _bench(argparse.Namespace(rest=argv[1:]))
    args = parser.parse_args(argv)
    args.argv = argv  # the workers of --workers N run the same command line
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"urok: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

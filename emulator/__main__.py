"""`python -m emulator --port 8774 --state var/cloud.sqlite3`: serve the emulated cloud in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from emulator.server import RunningEmulator, clouds_yaml, start_emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8774)
    parser.add_argument("--state", type=Path, default=Path("var/cloud.sqlite3"), help="SQLite state file")
    parser.add_argument("--seed", type=Path, default=None, help="seed YAML (default: emulator/seed.yaml)")
    parser.add_argument("--build-seconds", type=float, default=3.0)
    parser.add_argument("--snapshot-seconds", type=float, default=4.0)
    parser.add_argument(
        "--public-url", default=None, help="URL clients reach the emulator on, if not the host"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the URL line and errors")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--separate-ports", action="store_true", help="also one port per service")
    args = parser.parse_args(argv)
    return serve(
        args.host,
        args.port,
        args.state,
        args.seed,
        args.build_seconds,
        args.snapshot_seconds,
        args.public_url,
        quiet=args.quiet,
        latency=args.latency,
        separate_ports=args.separate_ports,
    )


def serve(
    host: str,
    port: int,
    state: Path | None,
    seed: Path | None = None,
    build_seconds: float = 3.0,
    snapshot_seconds: float = 4.0,
    public_url: str | None = None,
    quiet: bool = False,
    latency: float = 0.0,
    separate_ports: bool = False,
) -> int:
    """Run until Ctrl-C (or SIGTERM), after printing the URL and a clouds.yaml entry for the demo user.

    SIGINT and SIGTERM are blocked before the first server thread starts and waited for with
    sigwait, so one that arrives while the emulator starts or prints waits its turn. It used to raise
    KeyboardInterrupt wherever the main thread was: before the `try`, the listeners were never
    stopped nor the state closed, and the command died of the interrupt; SIGTERM killed it outright.
    The threads inherit the mask, so the signal is the main thread's alone; the listeners are stopped
    in `finally` whatever happens.
    """
    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    running: RunningEmulator | None = None
    try:
        try:
            running = start_emulator(
                host,
                port,
                state,
                seed,
                build_seconds,
                snapshot_seconds,
                public_url,
                latency=latency,
                separate_ports=separate_ports,
            )
        except (OSError, ValueError) as exc:
            print(f"cannot start the emulated cloud: {exc}", file=sys.stderr)
            return 1
        print(f"Emulated OpenStack cloud (not a real one) on {running.url}  state: {state or 'in memory'}")
        if not quiet:
            print("clouds.yaml entry for the demo user (save as ~/.config/openstack/clouds.yaml):\n")
            print(clouds_yaml(running.auth_url))
        sys.stdout.flush()
        signal.sigwait(stop_signals)
        print("stopping", flush=True)
    finally:
        if running is not None:
            running.stop()
        while stop_signals & signal.sigpending():  # a second Ctrl-C while stopping: stopped already
            signal.sigwait(stop_signals)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    return 0


if __name__ == "__main__":
    sys.exit(main())

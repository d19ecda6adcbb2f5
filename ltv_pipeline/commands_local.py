"""The `ltv` commands that run no Dagster job: generate, ui, score-user and forget (the ones
that do are in commands.py)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from ltv_pipeline import settings
from ltv_pipeline.cli import EXIT_OK, progress


def score_user(args: argparse.Namespace) -> int:
    """`ltv score-user USER_ID [--as-of D]`: JSON from the online store and the champion."""
    import json

    from ltv_pipeline.lib.errors import InputError
    from ltv_pipeline.lib.feature_store import StaleFeaturesError
    from ltv_pipeline.lib.scoring import score_online

    home = settings.ensure_home()
    if not (home / "models" / "champion.json").exists():
        raise InputError("there is no champion model yet: run `ltv demo` before `ltv score-user`")
    try:
        out = score_online(home, args.user_id.strip(), args.as_of.isoformat() if args.as_of else None)
    except (LookupError, StaleFeaturesError) as exc:
        raise InputError(f"score-user {args.user_id!r}: {exc}") from None
    print(json.dumps(out))
    return EXIT_OK


def generate(args: argparse.Namespace) -> int:
    from ltv_pipeline.lib.generator import generate as make_log
    from ltv_pipeline.lib.generator import write

    progress(f"generating {args.users:,} users (seed {args.seed}"
             + (f", drift at {args.drift_at}" if args.drift_at else "") + ")")
    t0 = time.perf_counter()
    tables = make_log(n_users=args.users, seed=args.seed, drift_at=args.drift_at)
    paths = write(tables, args.out)
    progress(f"done in {time.perf_counter() - t0:.1f} s")
    for name, path in paths.items():
        print(f"{path}\t{len(tables[name]):,} rows")
    return EXIT_OK


def ui(args: argparse.Namespace) -> int:
    """`dagster dev` on LTV_HOME's DAGSTER_HOME, in its own process group so that stopping it
    stops its children too (PITFALLS.md)."""
    settings.ensure_home()
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(settings.REPO_ROOT / "workspace.yaml"),
           "-h", args.host, "-p", str(args.port)]
    progress(f"Dagster UI on http://{args.host}:{args.port} (Ctrl-C stops it)")
    # Own session (so the whole group can be stopped) with SIGINT restored to its default even
    # when this process was started with SIGINT ignored (PITFALLS.md).
    proc = subprocess.Popen(
        cmd, cwd=settings.REPO_ROOT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C stops the UI even when this process was started with SIGINT ignored (a background
    # job of a script inherits that, and Python then installs no KeyboardInterrupt handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        progress("stopping the Dagster UI")
        _stop_group(proc)
        return EXIT_OK


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGINT (dagster dev shuts down gracefully on it), then SIGKILL for what is left."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    # children of dagster dev may outlive it: clear the group whatever happened above
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def forget(args: argparse.Namespace) -> int:
    """`ltv forget USER_ID`: erase one customer from every store under LTV_HOME (lib/privacy.py;
    erase_users_job does the same for lists) and print JSON of what was removed."""
    import json

    from ltv_pipeline.lib import locks, privacy

    home = settings.ensure_home()
    user_id = privacy.validate_ids([args.user_id])[0]
    with locks.exclusive(home, "ltv forget", on_wait=progress):
        report = privacy.forget(home, [user_id], source="ltv forget")
    progress(f"nothing left to remove for that id in {home} (already erased or never loaded); "
             "it stays on the erasure list" if report["nothing_found"] else
             f"erased {report['rows_removed']:,} rows; the id is left out of later loads")
    print(json.dumps(report, indent=2))
    return EXIT_OK

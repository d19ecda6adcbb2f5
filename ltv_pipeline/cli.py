"""The `ltv` command (contract in DESIGN.md). Exit codes: 0 success; 2 bad input or arguments
(one paragraph on stderr, no traceback); 1 internal failure. Progress goes to stderr, data and
JSON to stdout or files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from ltv_pipeline.lib.errors import InputError, find_input_error

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2


def progress(msg: str) -> None:
    print(f"[ltv] {msg}", file=sys.stderr, flush=True)


# ---- argument types: each raises ArgumentTypeError with the offending value ----------------
def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def any_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def source_spec(text: str) -> str:
    if text in ("cdnow", "synthetic"):
        return text
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither 'cdnow', 'synthetic' nor an existing directory"
        )
    return str(path.resolve())


def existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no such file")
    return path.resolve()


def output_path(text: str) -> Path:
    path = Path(text).expanduser()
    if path.suffix not in (".parquet", ".csv"):
        raise argparse.ArgumentTypeError(f"{text!r}: the extension must be .parquet or .csv")
    return path.resolve()


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit code is 2 as well
        self.exit(EXIT_INPUT, f"ltv {self.prog.split()[-1]}: {message}\n(see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="ltv", description="Customer lifetime value pipeline.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    d = sub.add_parser("demo", help="load a source and run the whole asset graph as of a date")
    d.add_argument("--source", type=source_spec, default="cdnow",
                   help="cdnow (default, the real CDNOW log), synthetic, or a directory")
    d.add_argument("--as-of", type=iso_date, help="cutoff date (default: last date in the data)")
    d.add_argument("--horizon-days", type=positive_int, help="forecast horizon in days")

    s = sub.add_parser("score", help="materialize the daily scoring partitions D1..D2")
    s.add_argument("--from", dest="date_from", type=iso_date, required=True)
    s.add_argument("--to", dest="date_to", type=iso_date, required=True)
    s.add_argument("--skip-online", action="store_true",
                   help="leave the Feast online store as it is (batch scores and exports only)")

    m = sub.add_parser("monitor", help="materialize the monitoring partition and print JSON")
    m.add_argument("--as-of", type=iso_date, required=True)

    pr = sub.add_parser("predict", help="forecast per user for the given files")
    pr.add_argument("--transactions", type=existing_file, required=True)
    pr.add_argument("--users", type=existing_file)
    pr.add_argument("--events", type=existing_file)
    pr.add_argument("--fx-rates", dest="fx_rates", type=existing_file,
                    help="date, currency, rate_to_base (default: fx_rates.parquet or .csv "
                    "beside --transactions, if there is one)")
    pr.add_argument("--cutoff", type=iso_date, required=True)
    pr.add_argument("--horizon-days", type=positive_int, required=True)
    pr.add_argument("--out", type=output_path, required=True)
    pr.add_argument("--report", type=Path)

    g = sub.add_parser("generate", help="write a synthetic log in the input contract's schema")
    g.add_argument("--users", type=positive_int, required=True)
    g.add_argument("--seed", type=any_int, required=True)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--drift-at", type=iso_date)

    u = sub.add_parser("ui", help="the Dagster UI on 127.0.0.1")
    u.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    u.add_argument("--port", type=positive_int, default=3000)

    su = sub.add_parser("score-user", help="one customer's forecast from the online store")
    su.add_argument("user_id")
    su.add_argument("--as-of", type=iso_date)

    f = sub.add_parser("forget", help="erase one customer from every store")
    f.add_argument("user_id")
    return p


def _check_args(args: argparse.Namespace) -> None:
    if args.command == "score" and args.date_from > args.date_to:
        raise InputError(f"--from {args.date_from} is after --to {args.date_to}")
    if args.command in ("score-user", "forget") and not args.user_id.strip():
        raise InputError("USER_ID is empty")


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from ltv_pipeline import commands, commands_local

    return {
        "demo": commands.demo,
        "generate": commands_local.generate,
        "ui": commands_local.ui,
        "score": commands.score,
        "monitor": commands.monitor,
        "predict": commands.predict,
        "score-user": commands_local.score_user,
        "forget": commands_local.forget,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_args(args)
        return _commands()[args.command](args)
    except KeyboardInterrupt:
        print(f"ltv {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: map errors to exit codes
        found = find_input_error(exc)
        if found is not None:
            print(f"ltv {args.command}: {found}", file=sys.stderr)
            return EXIT_INPUT
        import traceback

        from ltv_pipeline import settings

        log = settings.ltv_home() / "last-error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        print(f"ltv {args.command}: internal error: {exc} (traceback in {log})", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

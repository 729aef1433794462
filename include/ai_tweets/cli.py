"""`ai-tweets <stage> ...`: every stage by hand, through the same functions the DAGs call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ai_tweets.settings import SettingsError, load_settings

SECRET_FIELDS = {"streamingdb_password", "label_studio_api_key", "x_bearer_token"}


def _settings_command(_: argparse.Namespace) -> int:
    settings = load_settings()
    for name, value in vars(settings).items():
        shown = "***" if name in SECRET_FIELDS and value else value
        print(f"{name.upper():<26}{shown}")
    return 0


def _health_command(args: argparse.Namespace) -> int:
    from ai_tweets.health import CHECKS, ServiceDown

    settings = load_settings()
    failed = 0
    for name in args.services or CHECKS:
        try:
            print(f"ok    {name:<14}{CHECKS[name](settings)}")
        except (ServiceDown, SettingsError) as exc:
            failed += 1
            print(f"DOWN  {name:<14}{exc}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai-tweets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("settings", help="print the validated settings (secrets masked)").set_defaults(
        handler=_settings_command)
    health = commands.add_parser("health", help="check that every service answers")
    health.add_argument("services", nargs="*", metavar="SERVICE",
                        help="postgres, kafka, mlflow, label_studio, airflow (default: all)")
    health.set_defaults(handler=_health_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SettingsError as exc:
        print(f"error: bad setting: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

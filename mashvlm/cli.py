"""The ``mashvlm`` command line: each component registers its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that expose ``register(subparsers)``; each adds its own sub-commands.
_COMMAND_MODULES = (
    "mashvlm.commands.model",
    "mashvlm.unscene.cli",
    "mashvlm.synth.cli",
    "mashvlm.training.cli",
    "mashvlm.training.data_cli",
    "mashvlm.study.cli",
    "mashvlm.analysis.cli",
    "mashvlm.evaluation.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mashvlm", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and (name == err.name or name.startswith(err.name + ".")):  # component absent
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command. The one error policy (docs/decisions.md): the project's own errors
    (:class:`MashVlmError`, a bad input the user can fix) print one line naming the input and the fix,
    and exit with status 2 (or the error's own ``exit_code``, e.g. 1 for an aborted run); anything else
    is a bug and keeps its traceback. Sub-commands do not catch errors themselves; invalid options are
    argparse's (usage message, exit 2)."""
    from mashvlm.errors import MashVlmError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MashVlmError as err:
        print(f"error: {err}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))


if __name__ == "__main__":
    sys.exit(main())

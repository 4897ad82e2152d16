"""The fuzzing process: ``python -m sentinel.fuzz.runner TARGET [libFuzzer arguments]``.

``atheris.Setup`` + ``atheris.Fuzz`` take the process over (libFuzzer's loop; it exits on the first
crash, writing the input to a crash file), so ``sentinel fuzz`` runs this in a subprocess. The harness
and everything it imports from the project, and the pure-Python standard modules the targets parse
with, are imported under atheris's bytecode instrumentation, with its string-comparison hooks on, so that
coverage of the Python code guides the mutations.
"""

from __future__ import annotations

import importlib
import sys

import atheris

from sentinel.fuzz import TARGETS

INSTRUMENTED = ("sentinel", "ipaddress", "json", "tomllib", "base64")


def main(argv: list[str]) -> None:
    """Fuzz ``argv[1]`` with the remaining arguments handed to libFuzzer; does not return."""
    if len(argv) < 2 or argv[1] not in TARGETS:
        raise SystemExit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer arguments]")
    # Not the "RegEx" hook: its pattern proxies refuse match(text, pos), which json and tomllib call.
    atheris.enabled_hooks.add("str")
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        harness = importlib.import_module(TARGETS[argv[1]])
    atheris.Setup([argv[0], *argv[2:]], harness.TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

"""Coverage-guided fuzzing (atheris, libFuzzer) of the code that reads untrusted bytes and text.

One harness module per target. Each has ``TestOneInput(data: bytes)``, which runs the code under test
on one input and asserts its properties (an AssertionError, or any exception the code does not
document, is a crash); ``seeds()``, valid and typical inputs built in code that the fuzzer starts
from; ``DICTIONARY``, tokens its mutations insert; and ``MAX_LEN``, the largest input worth
generating. ``sentinel fuzz TARGET`` runs one target in a subprocess (``runner``: atheris takes the
process over); ``make test`` runs each briefly.
"""

from __future__ import annotations

# Target name -> harness module.
TARGETS: dict[str, str] = {
    "request_decoder": "sentinel.fuzz.request_decoder",
    "rule_parser": "sentinel.fuzz.rule_parser",
    "ledger_record": "sentinel.fuzz.ledger_record",
}

"""Exceptions of the hot path: one type per cause, so the server can map each to a gRPC status.

``HotpathError`` is the base. The server maps ``InvalidTransactionValue`` to INVALID_ARGUMENT (it
names the field and the row), ``StateDecodeError`` to a per-account decision (treat the account as
unknown and log, or fail the item: the server's choice) and ``InvalidRuleProgram`` to a rejected rule
(INVALID_ARGUMENT when an analyst saves it, never at scoring time because programs are validated
when they are loaded).
"""

from __future__ import annotations


class HotpathError(Exception):
    """Base of every error raised by ``sentinel.hotpath``."""


class StateDecodeError(HotpathError):
    """An encoded account state is not a valid blob of the current layout.

    Raised for an unknown version, a wrong length or content that cannot come from the encoder
    (NaN, out-of-range values, non-zero reserved bits). The hot path never guesses a state from a
    bad blob. ``slot`` is the index in the ``states`` list when the blob came from a batch, else None.
    """

    def __init__(self, message: str, slot: int | None = None) -> None:
        self.slot = slot
        super().__init__(message if slot is None else f"state of slot {slot}: {message}")


class InvalidTransactionValue(HotpathError, ValueError):
    """A transaction value the hot path cannot compute with (NaN/inf amount, latitude 91 ...).

    ``field`` is the name of the column (``amount``, ``latitude`` ...), ``row`` the row index in the
    batch (None when raised by ``TransactionColumnsBuilder.append`` for the row being appended).
    """

    def __init__(self, field: str, description: str, row: int | None = None) -> None:
        self.field = field
        self.row = row
        self.description = description
        where = "" if row is None else f"row {row}: "
        super().__init__(f"{where}{field}: {description}")


class InvalidRuleProgram(HotpathError, ValueError):
    """A rule program is malformed; ``instruction`` is the index of the first bad one (or None)."""

    def __init__(self, message: str, instruction: int | None = None) -> None:
        self.instruction = instruction
        super().__init__(message if instruction is None else f"instruction {instruction}: {message}")

"""Which rows train a model, which calibrate its thresholds, and which nobody may look at until the end.

Rows are split by their originating account, not by position: every transaction of an account lands
in the same part, so a held-out figure is about accounts the model never saw (what the service meets
in production), and the part of an account never changes when the file grows or is cut, because it
depends on nothing but the account's id (the top bits of its ``stable_hash``, the hash the hot path
already uses). A split by time was the alternative; in the fraud-enriched PaySim sample legitimate
traffic sits in the first steps and fraud is spread evenly over all of them, so a time split hands
the validation part a fraud rate unlike the others and very few frauds to set thresholds with.

Parts: ``holdout`` (the lowest ``holdout_fraction`` of the hash range; only ``sentinel evaluate``
ever reads it, through ``--write-holdout``'s file), ``validation`` (the next ``validation_fraction``:
thresholds and the figures stored with the model) and ``train`` (the rest).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from sentinel.hotpath import stable_hash
from sentinel.model_export.paysim import COLUMNS

Part = Literal["train", "validation", "holdout"]
_BUCKETS = 10_000
_ORIGIN_COLUMN = COLUMNS.index("nameOrig")


@dataclass(frozen=True, slots=True)
class SplitParameters:
    """Shares of the accounts held out for the final evaluation and for calibration."""

    validation_fraction: float = 0.2
    holdout_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not (0.0 < self.validation_fraction < 1.0 and 0.0 <= self.holdout_fraction < 1.0):
            raise ValueError("validation_fraction must be in (0, 1) and holdout_fraction in [0, 1)")
        if self.validation_fraction + self.holdout_fraction >= 1.0:
            raise ValueError("validation_fraction + holdout_fraction must leave rows to train on")

    def part_of(self, account: str) -> Part:
        """The part every transaction of ``account`` belongs to."""
        bucket = (stable_hash(account) >> 32) % _BUCKETS
        if bucket < self.holdout_fraction * _BUCKETS:
            return "holdout"
        if bucket < (self.holdout_fraction + self.validation_fraction) * _BUCKETS:
            return "validation"
        return "train"

    def masks(self, accounts: Sequence[str]) -> dict[Part, npt.NDArray[np.bool_]]:
        """One boolean row mask per part for rows originating from ``accounts``."""
        parts = np.array([self.part_of(account) for account in accounts])
        return {part: parts == part for part in ("train", "validation", "holdout")}


def write_holdout(source: Path, target: Path, split: SplitParameters) -> int:
    """Copy the header and the held-out rows of the PaySim CSV ``source`` to ``target``, as they are.

    Returns the number of rows written. The copy keeps the original text of each row, so the file
    replays exactly what the model was kept from.
    """
    written = 0
    with source.open(newline="") as reader_file, target.open("w", newline="") as writer_file:
        reader, writer = csv.reader(reader_file), csv.writer(writer_file, lineterminator="\n")
        writer.writerow(next(reader))
        for row in reader:
            if split.part_of(row[_ORIGIN_COLUMN]) == "holdout":
                writer.writerow(row)
                written += 1
    return written

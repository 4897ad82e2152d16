from collections.abc import Sequence

SEQUENCE_INDEX: int

def pending_claims(
    keys: list[str], fingerprints: list[bytes], rows: list[int], prefix: bytes, suffix: bytes, tail: bytes
) -> tuple[list[bytes], list[bytes]]: ...
def settle_claims(
    keys: list[str],
    fingerprints: list[bytes],
    results: Sequence[object],
    decided: type[tuple[object, ...]],
    owners: dict[int, tuple[bytes | None, bytes | None]],
    replays: set[int],
    resubmitted: set[int],
    durable: bool,
    prefix: bytes,
    suffix: bytes,
    mark: bytes,
) -> tuple[list[bytes], list[bytes]]: ...

"""Stable numeric codes for strings: ids, countries.

``stable_hash`` is 64-bit FNV-1a over the UTF-8 bytes of the id (offset basis 0xcbf29ce484222325,
prime 0x100000001b3), the same in the compiled builder and in ``reference_codec.fnv1a_64``, and
stable across processes and versions (unlike Python's ``hash``). The empty string maps to 0, which
means "not given"; the one-in-2**64 non-empty id hashing to 0 maps to 1 instead. Account states
keep these hashes in their counterparty/device rings.

Rule programs compare ids as ``id_value(hash)``: the top 53 bits of the hash as a float64, exact
(no rounding) so two different ids collide only with probability 2**-53.
"""

from __future__ import annotations

from sentinel.hotpath._columns import stable_hash


def country_code(country: str) -> int:
    """ISO 3166-1 alpha-2 code as uint16: ``ord(c0) << 8 | ord(c1)``; ``""`` is 0 (unknown).

    Raises ValueError unless the code is empty or two ASCII letters A-Z.
    """
    if not country:
        return 0
    if len(country) != 2 or not ("A" <= country[0] <= "Z" and "A" <= country[1] <= "Z"):
        raise ValueError(f"country must be two letters A-Z, got {country[:8]!r}")
    return ord(country[0]) << 8 | ord(country[1])


def id_value(hash_value: int) -> float:
    """The float64 a rule program sees for an id hash (its top 53 bits, exactly representable)."""
    return float(hash_value >> 11)


__all__ = ["country_code", "id_value", "stable_hash"]

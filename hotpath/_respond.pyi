import numpy as np
import numpy.typing as npt

from sentinel.hotpath.respond import RuleTable

def reason_entry(code: str, description: str) -> bytes: ...
def rule_hit_entry(rule_id: str, rule_version: int, action: int, shadow: bool) -> bytes: ...
def encode_decisions(
    table: RuleTable,
    transaction_ids: list[str],
    idempotency_keys: list[str],
    model_scores: npt.NDArray[np.float32],
    matches: npt.NDArray[np.uint8],
    review_threshold: float,
    decline_threshold: float,
    degraded: bool,
    fail_closed: bool,
    model_version: str,
    decided_at_seconds: int,
    decided_at_nanos: int,
    shadow_version: str | None = None,
    shadow_scores: npt.NDArray[np.float32] | None = None,
    shadow_review_threshold: float = 0.0,
    shadow_decline_threshold: float = 0.0,
    caller_names: list[str] | None = None,
    caller_rows: npt.NDArray[np.int32] | None = None,
) -> tuple[
    npt.NDArray[np.uint8],
    npt.NDArray[np.float64],
    list[bytes],
    npt.NDArray[np.uint8] | None,
    npt.NDArray[np.float64] | None,
]: ...
def score_response(payload: bytes, ledger_sequence: int, replayed: bool) -> bytes: ...
def score_batch_response(
    kinds: npt.NDArray[np.uint8],
    payloads: list[bytes],
    ledger_sequences: npt.NDArray[np.int64],
    replayed: npt.NDArray[np.uint8],
) -> bytes: ...
def stream_responses(
    transaction_ids: list[str],
    kinds: npt.NDArray[np.uint8],
    payloads: list[bytes],
    ledger_sequences: npt.NDArray[np.int64],
    replayed: npt.NDArray[np.uint8],
) -> list[bytes]: ...

from sentinel.hotpath.columns import TransactionColumns

def stable_hash(text: str) -> int: ...

class TransactionColumnsBuilder:
    def __init__(self, capacity: int = 256) -> None: ...
    def __len__(self) -> int: ...
    def append(
        self,
        account_slot: int,
        amount: float,
        type_code: int,
        event_time: float,
        latitude: float | None = None,
        longitude: float | None = None,
        country: str = "",
        channel: int = 0,
        counterparty_id: str = "",
        device_id: str = "",
        origin_before: float | None = None,
        origin_after: float | None = None,
        destination_before: float | None = None,
        destination_after: float | None = None,
    ) -> None: ...
    def build(self) -> TransactionColumns: ...
    def clear(self) -> None: ...

import numpy as np
import numpy.typing as npt

from sentinel.hotpath.columns import TransactionColumns

def build_features(
    columns: TransactionColumns, states: list[bytes | None]
) -> tuple[npt.NDArray[np.float32], list[bytes | None]]: ...
def build_features_stateless(columns: TransactionColumns) -> npt.NDArray[np.float32]: ...

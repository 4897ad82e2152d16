import numpy as np
import numpy.typing as npt

from sentinel.hotpath.columns import TransactionColumns
from sentinel.hotpath.program import RuleSet

def evaluate_rules(
    rules: RuleSet, features: npt.NDArray[np.float32], columns: TransactionColumns
) -> npt.NDArray[np.uint8]: ...

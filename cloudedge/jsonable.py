"""JSON for results that hold NumPy values: ``json.dumps(result, default=jsonable)``."""
import numpy as np


def jsonable(value):
    """``json.dumps``' ``default`` hook: a NumPy scalar becomes its Python number, an array
    its nested lists, anything else json cannot write its ``str``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)

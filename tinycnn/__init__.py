"""tinycnn: a from-scratch CNN engine in NumPy with Cython hot paths.

Layout is NCHW float32 throughout; Conv2D weights are (out_channels, in_channels, kh, kw).
"""
from . import allocator  # noqa: F401  (tunes malloc at import; see allocator.py)
from .gradcheck import gradcheck
from .kernels import backend
from .layers import Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU
from .losses import log_softmax, softmax, softmax_cross_entropy
from .model import Sequential, load
from .optim import SGD
from .parallel import get_threads, set_threads, threads
from .serialization import load_weights, save

__version__ = "0.1.0"

__all__ = [
    "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "MaxPool2D", "ReLU", "Sequential",
    "SGD", "backend", "get_threads", "gradcheck", "load", "load_weights", "log_softmax", "save", "softmax",
    "softmax_cross_entropy", "set_threads", "threads",
]

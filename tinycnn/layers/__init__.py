"""Layers of tinycnn; every one follows the contract in ``base.Layer``."""
from .base import Layer
from .conv import Conv2D
from .dense import Dense
from .pool import MaxPool2D
from .simple import Dropout, Flatten, ReLU

# type name -> class, for rebuilding models from saved specs
LAYER_TYPES = {cls.__name__: cls for cls in (Conv2D, Dense, MaxPool2D, ReLU, Flatten, Dropout)}

__all__ = ["Layer", "Conv2D", "Dense", "MaxPool2D", "ReLU", "Flatten", "Dropout", "LAYER_TYPES"]

"""NumPy reference for the SGD update; same signature as ``_sgd.pyx``."""


def sgd_momentum_update(p, g, v, lr, momentum, weight_decay):
    """In place:  v = momentum*v + (g + weight_decay*p);  p -= lr*v.  p, g, v: 1-D, equal length."""
    v *= momentum
    v += g + weight_decay * p
    p -= lr * v

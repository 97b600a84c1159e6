"""Softmax cross-entropy, the loss of every classifier here."""
import numpy as np


def log_softmax(logits):
    """logits: (N, K) float -> log p: (N, K). Stable: subtracts each row's max first."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """logits: (N, K) float -> p: (N, K), rows sum to 1."""
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(logits, targets):
    """Mean softmax cross-entropy over the batch, and its gradient.

    logits:  (N, K) float32/float64
    targets: (N,) int class indices in [0, K), or (N, K) probabilities (soft labels)
    returns: (loss: float, dlogits: (N, K) same dtype as logits)

        loss    = -1/N * sum_n sum_k t[n, k] * log softmax(logits)[n, k]
        dlogits = (softmax(logits) - t) / N
    Stable for huge logits: log-softmax is computed from logits - max.
    """
    if not isinstance(logits, np.ndarray) or logits.dtype not in (np.float32, np.float64):
        raise TypeError(f"logits must be a float32/float64 array, got "
                        f"{getattr(logits, 'dtype', type(logits).__name__)}")
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, K), got shape {logits.shape}")
    N, K = logits.shape
    targets = np.asarray(targets)
    logp = log_softmax(logits)
    if targets.ndim == 1 and np.issubdtype(targets.dtype, np.integer):
        if targets.shape[0] != N:
            raise ValueError(f"targets must have N={N} labels, got {targets.shape[0]}")
        if N and (targets.min() < 0 or targets.max() >= K):
            raise ValueError(f"labels must be in [0, {K}), got values in "
                             f"[{targets.min()}, {targets.max()}]")
        rows = np.arange(N)
        loss = -logp[rows, targets].mean()
        dlogits = np.exp(logp)
        dlogits[rows, targets] -= 1
    elif targets.ndim == 2 and np.issubdtype(targets.dtype, np.floating):
        if targets.shape != (N, K):
            raise ValueError(f"soft targets must have shape {(N, K)}, got {targets.shape}")
        loss = -(targets * logp).sum(axis=1).mean()
        dlogits = np.exp(logp) - targets
    else:
        raise TypeError(f"targets must be (N,) integer labels or (N, K) float probabilities, "
                        f"got shape {targets.shape} dtype {targets.dtype}")
    dlogits /= N
    return float(loss), dlogits.astype(logits.dtype, copy=False)

"""What an edge does with the cloud's labels (the paper trusts them all; the rest is beyond it).

The paper assumes CloudCNN is always right (``TrustAll``). Two alternatives:
``ConfidenceThreshold(t)`` keeps only objects whose top probability is >= t, and
``SoftLabels()`` trains on CloudCNN's whole softmax (distillation; the cloud then
sends K float32 per object, which the byte counts include).

``policy.apply(reply)`` -> (keep mask (n,) bool, hard labels (n,) int64,
soft targets (n, K) float32 or None). Rejected objects are dropped from the edge.
"""
import numpy as np


class LabelPolicy:
    name = "policy"
    needs_probs = False  # does the cloud have to send the full softmax?

    def apply(self, reply):
        raise NotImplementedError

    def describe(self):
        return self.name

    def spec(self):
        """The string make_policy turns back into this policy."""
        return self.name


class TrustAll(LabelPolicy):
    """Every label the cloud sends is taken as ground truth (the paper's assumption)."""
    name = "trust-all"

    def apply(self, reply):
        return np.ones(len(reply.labels), dtype=bool), reply.labels.astype(np.int64), None


class ConfidenceThreshold(LabelPolicy):
    """Keep an object only if CloudCNN's top probability is >= threshold."""
    name = "confidence"

    def __init__(self, threshold=0.9):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        self.threshold = float(threshold)

    def apply(self, reply):
        return reply.confidence >= self.threshold, reply.labels.astype(np.int64), None

    def describe(self):
        return f"{self.name}>={self.threshold:g}"

    def spec(self):
        return f"{self.name}:{self.threshold!r}"


class SoftLabels(LabelPolicy):
    """Train on CloudCNN's softmax, taken at ``temperature`` by the cloud (1 = plain softmax)."""
    name = "soft"
    needs_probs = True

    def __init__(self, temperature=1.0):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def apply(self, reply):
        if reply.probs is None:
            raise ValueError("soft labels need the cloud's probabilities; the reply has none "
                             "(ask the cloud with probs=True)")
        return np.ones(len(reply.labels), dtype=bool), reply.labels.astype(np.int64), reply.probs

    def describe(self):
        return f"{self.name}(T={self.temperature:g})"

    def spec(self):
        return f"{self.name}:{self.temperature!r}"


def make_policy(spec):
    """"trust-all", "confidence:0.9", "soft" or "soft:2" -> a LabelPolicy."""
    if isinstance(spec, LabelPolicy):
        return spec
    name, _, arg = str(spec).partition(":")
    if name == "trust-all" and not arg:
        return TrustAll()
    if name == "confidence":
        return ConfidenceThreshold(float(arg) if arg else 0.9)
    if name == "soft":
        return SoftLabels(float(arg) if arg else 1.0)
    raise ValueError(f"label policy must be 'trust-all', 'confidence[:t]' or 'soft[:T]', got {spec!r}")


def noise_report(labels, keep, truth):
    """Label-noise rates against ground truth the edge never sees (for reporting only).
    labels: (n,) the cloud's labels; keep: (n,) bool, the policy's mask; truth: (n,) the true labels.

    Returns {"sent", "sent_wrong", "sent_noise", "kept", "kept_wrong", "kept_noise"}.
    """
    wrong = np.asarray(labels) != np.asarray(truth)
    sent, kept = len(wrong), int(keep.sum())
    return {"sent": sent, "sent_wrong": int(wrong.sum()), "sent_noise": float(wrong.mean()) if sent else 0.0,
            "kept": kept, "kept_wrong": int(wrong[keep].sum()),
            "kept_noise": float(wrong[keep].mean()) if kept else 0.0}

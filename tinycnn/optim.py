"""SGD with momentum and weight decay; its state lives here, keyed by parameter name."""
import numpy as np

from . import kernels
from .parallel import parallel_for


# The fewest entries of a parameter per thread in the update. It is memory-bound, and where the
# arrays stay in cache two threads halve it: 6.4M weights 2.96 -> 1.49 ms on an Intel Xeon. Splitting
# at 1M instead of 4M entries (so EdgeCNN-3's 6272 x 1024 fc too) made its training step 1.11x
# faster on two threads; the laptop nets and CloudCNN 0.99-1.01x, also at 256K and 64K (alternating
# blocks, measured with the Gate pool; with ThreadPoolExecutor 0.4M weights had lost 13%).
SPLIT_ENTRIES = 1 << 20


class SGD:
    """SGD(model, lr=0.01, momentum=0.9, weight_decay=0.0).

    For each trainable parameter p (name like "3.W") with gradient g, per step:
        g = g + weight_decay * p
        v = momentum * v + g          (v starts at 0; the PyTorch convention)
        p = p - lr * v                (in place, so slices and shared layers see it)
    Frozen layers are skipped entirely: their params and velocities never change.
    """

    def __init__(self, model, lr=0.01, momentum=0.9, weight_decay=0.0):
        for name, value, lo in (("lr", lr, 0.0), ("momentum", momentum, 0.0),
                                ("weight_decay", weight_decay, 0.0)):
            if not isinstance(value, (int, float)) or value < lo:
                raise ValueError(f"{name} must be a number >= {lo}, got {value!r}")
        self.model = model
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.velocity = {}  # parameter name -> array like the parameter

    def step(self):
        """Apply one update from the grads left by the last backward."""
        for name, layer, key in self.model.trainable_slots():
            p, g = layer.params[key], layer.grads[key]
            if self.momentum:
                v = self.velocity.get(name)
                if v is None or v.shape != p.shape:
                    v = self.velocity[name] = np.zeros_like(p)
                elif v.dtype != p.dtype or not v.flags.c_contiguous:  # e.g. after model.astype()
                    v = self.velocity[name] = np.ascontiguousarray(v, dtype=p.dtype)
                if not p.flags.c_contiguous:
                    raise ValueError(f"SGD updates parameters in place and needs them C-contiguous; "
                                     f"{name} is not")
                p1, g1, v1 = p.reshape(-1), np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), v.reshape(-1)

                def update(lo, hi, p1=p1, g1=g1, v1=v1):  # one fused pass (see _sgd.pyx)
                    kernels.sgd_momentum_update(p1[lo:hi], g1[lo:hi], v1[lo:hi],
                                                self.lr, self.momentum, self.weight_decay)
                parallel_for(p.size, update, grain=SPLIT_ENTRIES)
            else:
                p -= self.lr * (g + self.weight_decay * p) if self.weight_decay else self.lr * g

    def clip_grad_norm(self, max_norm):
        """Scale every trainable gradient by min(1, max_norm / ||g||), ||g|| the global L2 norm
        over all of them (as torch.nn.utils.clip_grad_norm_). Returns ||g|| before clipping."""
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
        grads = [layer.grads[key] for _, layer, key in self.model.trainable_slots()]
        norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))
        if norm > max_norm:
            scale = max_norm / norm
            for g in grads:
                g *= g.dtype.type(scale)
        return norm

    def state_dict(self):
        """Hyper-parameters and velocities, as arrays keyed by name (for checkpoints)."""
        state = {f"velocity/{k}": v for k, v in self.velocity.items()}
        state["hyper"] = np.array([self.lr, self.momentum, self.weight_decay])
        return state

    def load_state_dict(self, state):
        self.lr, self.momentum, self.weight_decay = (float(v) for v in state["hyper"])
        self.velocity = {k[len("velocity/"):]: np.array(v) for k, v in state.items()
                         if k.startswith("velocity/")}

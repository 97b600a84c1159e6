"""The reproduction's targets, in the order docs/REPRODUCTION.md shows them and ``all`` runs them.

Each ``run(plan, data_cache)`` runs (or reuses) its runs, writes ``<out>/<name>.csv``, ``.png``,
``.md`` and ``.json``, and returns its summary.
"""
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from . import factors, fig10, large, stability, tables, variants


@dataclass(frozen=True)
class Target:
    title: str                      # its section heading in docs/REPRODUCTION.md
    run: Callable                   # run(plan, data_cache) -> summary


TARGETS = {
    "stability": Target("CloudCNN training stability at lr 0.01", stability.run),
    "factors": Target("What makes the headline hold: the N=120, k=3 gap, one factor at a time", factors.run),
    "table2": Target("Table 2: MNIST, accuracy vs training images", partial(tables.run, "table2")),
    "table3": Target("Table 3: Fashion-MNIST, accuracy vs training images", partial(tables.run, "table3")),
    "fig7": Target("Fig. 7: CIFAR-10, accuracy vs training images", partial(tables.run, "fig7")),
    "fig8": Target("Fig. 8: MNIST with large training sets", partial(large.run, "fig8")),
    "fig9": Target("Fig. 9: Fashion-MNIST with large training sets", partial(large.run, "fig9")),
    "fig10": Target("Fig. 10: training time, EdgeCNN0-k vs EdgeCNN1-k", fig10.run),
    "variants": Target("Variants the paper did not run (MNIST, k=3)", variants.run),
}
NAMES = tuple(TARGETS)

"""The paper's headline on the embedded MNIST split (Table 2, first column): with CloudCNN's 3
lower layers, EdgeCNN1-3 beats EdgeCNN0-3 trained from scratch on N = 120 labeled digits.

The CloudCNN is the one shipped in the package (cloudedge/pretrained: laptop preset, seed 0,
fixed before anything was measured, trained by `cloudedge train-cloud`), so no CPU's rounding
can change the cloud under test; what is measured is the edge side, the function the
reproduction runs (cloudedge.experiments.study.edge_accuracy), on eight edge seeds, each with its own 120
labeled digits of the edge pool and init seed.

The assertion: the mean gap is more than 3 standard errors above zero (se = sd / sqrt(8) over
eight edge seeds), and EdgeCNN1-3 wins at least 6 of the 8. Measured (gap per seed in points;
mean; mean / se) under each kernel we ran, OpenBLAS Haswell (the default here),
OPENBLAS_CORETYPE=Sandybridge, TINYCNN_KERNELS=numpy and TINYCNN_KERNELS=cython-baseline:
    +1.65 +3.80 +6.65 +1.00 +3.20 +2.65 +0.70 +2.60; mean +2.78; mean / se = 4.2; 8 of 8 won
(Sandybridge: the sixth seed +2.90, mean +2.81, the rest the same). Measured again on
2026-12-07 on an AVX-512 Xeon, where the direct convolution (kernels.direct_kernels()) runs the
edge net's thin layers: the fifth seed +3.25, the rest as above (mean +2.79, mean / se = 4.2),
by default and under Haswell and Sandybridge; NumPy gave the first line's figures, cython-baseline
(no AVX-512 kernels) the third seed +6.90 (mean +2.81, 4.1), and TINYCNN_KERNELS=cython-avx2 (what
a CPU with AVX2 but no AVX-512 runs: the AVX2 direct convolution and Winograd GEMM), with or
without OPENBLAS_CORETYPE=Haswell, the first line's figures.
The margin is thin in points (the paper reports +8.76): docs/REPRODUCTION.md (factors) says
why our from-scratch baseline is stronger than the paper's.
"""
import math

import numpy as np
import pytest

from cloudedge import pretrained
from cloudedge.system.cloud import Cloud
from cloudedge.system.config import EdgeConfig, RunConfig
from cloudedge.system.data import edge_data, load_dataset
from cloudedge.experiments.experiment import cloud_part, cloud_key
from cloudedge.experiments.study import edge_accuracy
from test_cloudedge_support import one_blas_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def shipped():
    data = load_dataset("mnist")
    cfg = RunConfig(dataset="mnist", labeled=120, uploads=0, edge=EdgeConfig(depth=3))
    cloud_ids, pool = cloud_part(data[1], cfg)
    path = pretrained.lookup(cloud_key(cfg, cloud_ids))
    assert path is not None, "the default MNIST CloudCNN must be shipped (cloudedge/pretrained)"
    return Cloud.load(path), data, cfg, pool


def test_edgecnn1_3_beats_edgecnn0_3_at_120_images(shipped):
    cloud, data, cfg, pool = shipped
    gaps = []
    for seed in range(8):
        share = edge_data(data[1], pool, 120, seed=seed)
        acc0 = edge_accuracy(cloud, data, cfg, share, False, seed)
        acc1 = edge_accuracy(cloud, data, cfg, share, True, seed)
        gaps.append(100 * (acc1 - acc0))
    gaps = np.array(gaps)
    se = gaps.std(ddof=1) / math.sqrt(len(gaps))
    print("gap per seed", np.round(gaps, 2), "mean", round(gaps.mean(), 2), "mean/se", round(gaps.mean() / se, 1))
    assert (gaps > 0).sum() >= 6, gaps
    assert gaps.mean() > 3 * se, (gaps, se)

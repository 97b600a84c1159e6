"""cloudedge: the cloud-edge collaboration framework of Ding et al. (2022) on tinycnn.

    cloud = Cloud.train(x_cloud, y_cloud, preset="laptop")      # CloudCNN
    edge = Edge("e1", EdgeConfig(depth=3, shared=True))         # EdgeCNN1-3
    edge.receive_package(cloud.export_layers(3))                # Alg. 1, line 1 (verified, frozen)
    edge.initialize(x_labeled, y_labeled)                       # Alg. 1
    edge.submit(images, ids); edge.sync(cloud, load); edge.maybe_retrain()   # Alg. 2

See docs/cloudedge.md.
"""
from .cloud import Cloud
from .config import EdgeConfig, RunConfig, SimConfig, edge_train_config
from .edge import Edge
from .experiment import get_cloud, run_edges, run_experiment
from .feature_cache import cacheable_prefix, fit_cached
from .labels import ConfidenceThreshold, SoftLabels, TrustAll, make_policy
from .loads import Constant, Diurnal, RandomLoad, Trace, make_load
from .models import cloud_cnn, edge_cnn, filter_plan, shared_prefix
from .package import make_package, open_package
from .retrain import EveryM, ExpectedGain, make_trigger
from .segmentation import Segmenter
from .simulator import Simulator

__all__ = [
    "Cloud", "ConfidenceThreshold", "Constant", "Diurnal", "Edge", "EdgeConfig", "EveryM", "ExpectedGain",
    "RandomLoad", "RunConfig", "Segmenter", "SimConfig", "Simulator", "SoftLabels", "Trace", "TrustAll",
    "cacheable_prefix", "cloud_cnn", "edge_cnn", "edge_train_config", "filter_plan", "fit_cached",
    "get_cloud", "make_load", "make_package", "make_policy", "make_trigger", "open_package", "run_edges",
    "run_experiment", "shared_prefix",
]

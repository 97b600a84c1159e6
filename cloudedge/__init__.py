"""cloudedge: the cloud-edge collaboration framework of Ding et al. (2022) on tinycnn.

    cloud = Cloud.train(x_cloud, y_cloud, preset="laptop")      # CloudCNN
    edge = Edge("e1", EdgeConfig(depth=3, shared=True))         # EdgeCNN1-3
    edge.receive_package(cloud.export_layers(3))                # Alg. 1, line 1 (verified, frozen)
    edge.initialize(x_labeled, y_labeled)                       # Alg. 1
    edge.submit(images, ids); edge.sync(cloud, load); edge.maybe_retrain()   # Alg. 2

Algorithm 1 (initialization) and Algorithm 2 (update) are methods of ``Edge`` in
system/edge.py, in that order; the cloud's side is system/cloud.py.

    system/       the paper's system: models, cloud, edge, layer packages, messages, data, configs
    policies/     what the paper leaves open: label policies, retrain triggers, loads, feature
                  cache, segmentation
    timing/       the response-time model and the multi-edge simulator
    experiments/  the system run on a data set (demo, experiment) and the headline study
    reproduce/    `cloudedge reproduce`: the paper's tables and figures, docs/REPRODUCTION.md
    server/       the networked prototype: HTTP cloud and edge servers, client
    commands/     the CLI's subcommands (cli.py); pretrained/ the shipped CloudCNN
    paper.py      the paper's own numbers, to print beside ours

See docs/cloudedge.md.
"""
from .system.cloud import Cloud
from .system.config import EdgeConfig, RunConfig, SimConfig, edge_train_config
from .system.edge import Edge
from .experiments.experiment import get_cloud, run_edges, run_experiment
from .policies.feature_cache import cacheable_prefix, fit_cached
from .policies.labels import ConfidenceThreshold, SoftLabels, TrustAll, make_policy
from .policies.loads import Constant, Diurnal, RandomLoad, Trace, make_load
from .system.models import cloud_cnn, edge_cnn, filter_plan, shared_prefix
from .system.package import make_package, open_package
from .policies.retrain import EveryM, ExpectedGain, make_trigger
from .policies.segmentation import Segmenter
from .timing.simulator import Simulator

__all__ = [
    "Cloud", "ConfidenceThreshold", "Constant", "Diurnal", "Edge", "EdgeConfig", "EveryM", "ExpectedGain",
    "RandomLoad", "RunConfig", "Segmenter", "SimConfig", "Simulator", "SoftLabels", "Trace", "TrustAll",
    "cacheable_prefix", "cloud_cnn", "edge_cnn", "edge_train_config", "filter_plan", "fit_cached",
    "get_cloud", "make_load", "make_package", "make_policy", "make_trigger", "open_package", "run_edges",
    "run_experiment", "shared_prefix",
]

"""cloudedge: the cloud-edge collaboration framework of Ding et al. (2022) on tinycnn."""
from .models import cloud_cnn, edge_cnn, filter_plan, shared_prefix

__all__ = ["cloud_cnn", "edge_cnn", "filter_plan", "shared_prefix"]

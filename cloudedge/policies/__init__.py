"""What the paper leaves open, each a small policy an edge or a run is configured with.

    labels.py         which cloud labels an edge keeps (trust-all, confidence threshold, soft)
    retrain.py        when an edge retrains (every M labels, expected gain)
    loads.py          core-network load traces (constant, diurnal, random, recorded)
    feature_cache.py  training above frozen layers on their cached output (fit_cached)
    segmentation.py   cutting uploads into objects before they are sent
"""

"""The system run on a data set: what `cloudedge demo` and `cloudedge experiment` print.

    experiment.py  one run: CloudCNN (cached), EdgeCNN0-k and EdgeCNN1-k through Algorithms 1
                   and 2, accuracy after every M uploads
    study.py       the headline over CloudCNN seeds x edge seeds: gap and 95% interval
    figures.py     the PNGs of a run
"""

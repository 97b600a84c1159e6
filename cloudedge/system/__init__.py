"""The paper's system (Ding et al. 2022, Sections 3 and 4.3.1).

    models.py      CloudCNN and EdgeCNN-k, their presets, shared_prefix(m)
    cloud.py       Cloud: trains CloudCNN, exports its m lower layers, labels uploads
    edge.py        Edge: Algorithm 1 (receive_package, initialize) and Algorithm 2 (submit,
                   sync, maybe_retrain)
    edge_state.py  what an edge holds: uploads, scores, labels, stats, the training store
    edge_files.py  an edge's state on disk (save, load)
    package.py     layer packages: the cloud's m lower layers as bytes, verified on arrival
    wire.py        byte formats of the other messages between edges and the cloud
    data.py        which images go where: the cloud's part, the edges' pools, the test split
    config.py      EdgeConfig, RunConfig, SimConfig: one default for each setting
"""

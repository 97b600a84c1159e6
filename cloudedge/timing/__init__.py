"""Time: the paper's response-time model and a multi-edge run on a virtual clock.

    network.py    response = upload + execution + result download (Section 3.3)
    simulator.py  several edges, one cloud, a virtual clock, deterministic from a seed
"""

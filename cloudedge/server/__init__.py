"""A networked prototype of the framework: cloud server, edge server and mobile client as
separate processes talking HTTP (standard library only). See docs/prototype.md.

    http.py          routes, token check, limits, JSON errors, metrics, threaded server
    shaping.py       link emulation in the transport (paced, delayed socket)
    httpclient.py    one request over a (shaped) connection, with timings
    payload.py       request/response bodies and their strict checks
    imaging.py       uploaded pixels -> model input
    store.py         the edge's durable object store
    cloud_server.py  cloudedge.system.cloud.Cloud behind HTTP
    remote.py        the cloud as an edge sees it (HTTP client, replay of a reply)
    edge_runtime.py  an edge's durable state and steps (start, serve, sync)
    uploader.py      the edge's background uploader
    edge_server.py   an EdgeRuntime behind HTTP
    client.py        the mobile-device load generator
    plots.py         measured Figs. 4 / 6
    process.py       what the serve-* commands share (options, signals)
"""

"""The edge server: an EdgeRuntime (and its Uploader) behind HTTP.

Routes (all but /health need the bearer token):
    GET  /health       {"status": "ok" | "degraded", "role": "edge", "model_version", ...}
    GET  /metrics      requests, bytes, latency percentiles, store counts, uploader, trainings
                       (JSON, or the Prometheus text format for Accept: text/plain)
    POST /infer        raw images (payload.RAW) -> {"labels", "confidences", "ids",
                       "model_version", "seconds"} answered by EdgeCNN; the segmented
                       objects are on disk before the answer leaves
    POST /sync[?force=1]  one upload step now (force: ignore the load trace) -> its result
"""
from . import httpclient, payload, prometheus
from .http import App, HttpError, Response
from .uploader import NETWORK_ERRORS


class EdgeServer:
    def __init__(self, runtime, uploader=None, token=None, max_body=16 * 1024 * 1024):
        self.runtime, self.uploader = runtime, uploader
        self.app = App("edge", token=token, max_body=max_body)
        self.app.route("GET", "/health", self.health, public=True)
        self.app.route("GET", "/metrics", self.metrics)
        self.app.route("POST", "/infer", self.infer)
        self.app.route("POST", "/sync", self.sync)

    def _problems(self):
        """A reason for /health's "degraded", with no internal exception text in it."""
        if self.uploader is None:
            return None
        if self.uploader.state["permanent"]:
            return f"uploader stopped: {self.uploader.state['permanent']}"
        if self.uploader.state["stopped_by"]:
            return "uploader stopped by an internal error (see the edge's log)"
        return None

    def health(self, request):
        problem = self._problems()
        serving = self.runtime.serving
        return Response.json({"status": "degraded" if problem else "ok", "role": "edge",
                              "problem": problem, "model_version": serving.version if serving else None,
                              "pending": len(self.runtime.store.pending_ids())})

    def metrics(self, request):
        snap = self.app.metrics.snapshot()
        snap["edge"] = self.runtime.summary()
        snap["uploader"] = dict(self.uploader.state) if self.uploader is not None else None
        return self.app.metrics_response(request, snap, self._families(snap))

    def _families(self, snap):
        """The edge's own metrics in Prometheus form, read from the JSON snapshot."""
        Family, edge = prometheus.Family, snap["edge"]
        families = [
            Family("cloudedge_uploads_total", "counter", "Objects the edge uploaded to the cloud and got labels for.",
                   [({}, edge["status"]["uploaded"])]),
            Family("cloudedge_upload_seconds", "histogram", "Seconds of one upload to the cloud: objects out, labels back.",
                   [({}, self.runtime.upload_seconds)]),
            Family("cloudedge_trainings_total", "counter", "Trainings of EdgeCNN: Algorithm 1, then each retraining.",
                   [({}, edge["status"]["trainings_total"])]),
            Family("cloudedge_model_version", "gauge", "Version of the model answering requests (trainings so far).",
                   [({}, edge["model_version"] or 0)]),
            Family("cloudedge_store_objects", "gauge", "Objects in the edge's store, by state.",
                   [({"state": k}, edge["store"][k]) for k in ("pending", "labeled", "quarantined", "missing")]),
            Family("cloudedge_degraded", "gauge", "1 while GET /health says degraded, else 0.",
                   [({}, int(self._problems() is not None))]),
        ]
        if snap["uploader"] is not None:
            families.append(Family("cloudedge_upload_failures_total", "counter",
                                   "Upload attempts to the cloud that failed: network errors and error answers.",
                                   [({}, snap["uploader"]["failures"])]))
        return families

    def infer(self, request):
        try:
            images = payload.decode_images(request.headers, request.body)
        except payload.PayloadError as exc:
            raise HttpError(400, str(exc)) from None
        out = self.runtime.serve(images)
        self.app.metrics.add("images_inferred", len(images))
        seconds = out["seconds"]
        return Response.json(out, headers={"X-Preprocess-Seconds": f"{seconds['preprocess']:.6f}",
                                           "X-Infer-Seconds": f"{seconds['infer']:.6f}",
                                           "X-Store-Seconds": f"{seconds['store']:.6f}"})

    def sync(self, request):
        force = request.query.get("force", "0") in ("1", "true", "yes")
        load = 0.0 if force or self.uploader is None else self.uploader.current_load()
        try:
            result = self.runtime.sync_once(load)
        except NETWORK_ERRORS as exc:
            status = 503 if isinstance(exc, httpclient.CallError) else 502
            raise HttpError(status, f"the cloud did not label the objects: {exc}") from None
        return Response.json(result)

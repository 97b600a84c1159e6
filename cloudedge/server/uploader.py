"""The edge's background uploader: sync pending objects while the core network is idle.

Every `interval` seconds (at once again after a step that uploaded something) it reads
the load trace at the seconds since start and calls EdgeRuntime.sync_once, which does
nothing while load >= the edge's threshold. When the cloud is unreachable or answers
5xx it waits (doubling, up to `max_backoff`) and tries again; the edge keeps answering
users meanwhile. A 4xx answer (wrong token, unknown edge name, a refused message) will not
change by retrying: the uploader stops and ``state["permanent"]`` says which status came,
and the edge's /health reports "degraded" with that reason. Any other exception stops the
uploader too (``stopped_by``), so a bug is never retried silently.
"""
import logging
import threading
import time

from . import httpclient, payload

log = logging.getLogger("cloudedge.server.uploader")
NETWORK_ERRORS = (httpclient.CallError, httpclient.StatusError, payload.PayloadError)
PERMANENT = {400: "bad request: check the edge name and versions", 401: "wrong or missing cloud token",
             403: "this edge may not do that", 404: "no such route: check the cloud URL",
             413: "message too large for the cloud"}


class Uploader:
    def __init__(self, runtime, load, interval=0.5, batch=64, max_backoff=10.0):
        if interval <= 0 or batch < 1 or max_backoff < interval:
            raise ValueError(f"need interval > 0, batch >= 1, max_backoff >= interval; got "
                             f"{interval}, {batch}, {max_backoff}")
        self.runtime, self.load, self.interval, self.batch = runtime, load, interval, batch
        self.max_backoff = max_backoff
        self.state = {"running": False, "steps": 0, "uploaded": 0, "skipped_busy": 0, "failures": 0,
                      "last_failure": None, "stopped_by": None, "permanent": None, "backoff_s": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-uploader", daemon=True)
        self._t0 = time.monotonic()

    def start(self):
        self.state["running"] = True
        self._thread.start()
        return self

    def stop(self, timeout=None):
        """Ask the loop to end and wait for the step in progress (None: as long as it takes)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self):
        delay = 0.0
        try:
            while not self._stop.wait(delay):
                delay = self._step()
        except Exception as exc:   # a bug or a local failure (disk): stop and say so, never loop on it
            log.exception("uploader stopped")
            self.state["stopped_by"] = f"{type(exc).__name__}: {exc}"
        finally:
            self.state["running"] = False

    def current_load(self):
        """The load trace at the seconds since this uploader was made."""
        return float(self.load(time.monotonic() - self._t0))

    def _step(self):
        load = self.current_load()
        try:
            result = self.runtime.sync_once(load, self.batch)
        except NETWORK_ERRORS as exc:
            self.state["failures"] += 1
            self.state["last_failure"] = str(exc)
            if isinstance(exc, httpclient.StatusError) and 400 <= exc.status < 500:
                # the cloud refused us; no retry makes a wrong token right: stop and say so
                self.state["permanent"] = (f"the cloud answered {exc.status} "
                                           f"({PERMANENT.get(exc.status, 'request refused')}); "
                                           f"uploads stopped until the edge is restarted with a fix")
                log.error("upload refused by the cloud with %d, not retrying: %s", exc.status, exc)
                self._stop.set()
                return 0.0
            self.state["backoff_s"] = min(max(2 * self.state["backoff_s"], self.interval), self.max_backoff)
            log.warning("upload to the cloud failed (%s); retrying in %.1f s", exc, self.state["backoff_s"])
            return self.state["backoff_s"]
        self.state["backoff_s"] = 0.0
        self.state["steps"] += 1
        if result["uploaded"]:
            self.state["uploaded"] += result["uploaded"]
            return 0.0
        if result["skipped"].startswith("load"):
            self.state["skipped_busy"] += 1
        return self.interval

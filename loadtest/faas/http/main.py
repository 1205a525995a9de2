"""Arena's esports API played by an HTTP function (Cloud Run functions / Knative style).

The gateway replays requests its containers could not serve on this function
(`kind: http`). Served locally by the Functions Framework:

    functions-framework --target=handler --source loadtest/faas/http/main.py \
        --host 127.0.0.1 --port 8095

Routes:
    POST /v1/verify          -> 200 {"verified": true, "bytes": <body length>, ...}
    GET  /v1/matches[/...]   -> 200 {"served_by": "faas-http", "path": ..., ...}
    GET  /v1/players[/...]   -> 200 {"served_by": "faas-http", "path": ..., ...}
    GET  /_fn/healthz        -> 200 {"ok": true} (readiness polling)
    any  /_fn/raise          -> the handler raises (the runtime answers 500, for tests)
    anything else            -> 404 JSON

`?sleep_ms=N` (at most 10000) delays the answer, so tests can hold a call in flight.
Every answer is JSON with `x-served-by: faas-http` and echoes `x-request-id`.
"""

import json
import time

import functions_framework

SERVED_BY = "faas-http"
MAX_SLEEP_MS = 10_000


def _reply(request, status, payload):
    headers = {
        "content-type": "application/json",
        "x-served-by": SERVED_BY,
    }
    request_id = request.headers.get("x-request-id")
    if request_id:
        headers["x-request-id"] = request_id
    return json.dumps(payload, separators=(",", ":")), status, headers


def _sleep_if_asked(request):
    raw = request.args.get("sleep_ms", "")
    try:
        ms = int(raw)
    except ValueError:
        return 0
    ms = max(0, min(ms, MAX_SLEEP_MS))
    if ms:
        time.sleep(ms / 1000.0)
    return ms


@functions_framework.http
def handler(request):
    path = request.path
    method = request.method.upper()
    slept = _sleep_if_asked(request)
    base = {
        "served_by": SERVED_BY,
        "path": path,
        "method": method,
        "request_id": request.headers.get("x-request-id"),
    }
    if slept:
        base["slept_ms"] = slept

    if path == "/_fn/raise":
        raise RuntimeError("arena-faas: failure requested by %s" % (base["request_id"] or "a test"))

    if path == "/_fn/healthz":
        if method in ("GET", "HEAD"):
            return _reply(request, 200, {"ok": True, "served_by": SERVED_BY})
        return _reply(request, 405, dict(base, error="method not allowed"))

    if path == "/v1/verify":
        if method != "POST":
            return _reply(request, 405, dict(base, error="method not allowed"))
        body = request.get_data(cache=False)
        return _reply(request, 200, dict(base, verified=True, bytes=len(body)))

    if any(path == p or path.startswith(p + "/") for p in ("/v1/matches", "/v1/players")):
        if method not in ("GET", "HEAD"):
            return _reply(request, 405, dict(base, error="method not allowed"))
        return _reply(request, 200, dict(base, query=request.args.to_dict()))

    return _reply(request, 404, dict(base, error="not found"))

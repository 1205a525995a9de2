"""An OTLP/HTTP trace receiver for the tests: decodes each ExportTraceServiceRequest with the
official OpenTelemetry protobuf definitions (PyPI `opentelemetry-proto`) and appends one JSON
line per span to a file. Usage: receiver.py PORT OUT_FILE"""

import http.server
import json
import sys

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path != "/v1/traces" or self.headers.get("content-type") != "application/x-protobuf":
            self.send_response(404)
            self.end_headers()
            return
        req = trace_service_pb2.ExportTraceServiceRequest()
        req.ParseFromString(body)
        with open(sys.argv[2], "a", encoding="utf-8") as out:
            for rs in req.resource_spans:
                resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        out.write(json.dumps({
                            "trace_id": sp.trace_id.hex(),
                            "span_id": sp.span_id.hex(),
                            "parent_span_id": sp.parent_span_id.hex(),
                            "name": sp.name,
                            "kind": sp.kind,
                            "start_ns": sp.start_time_unix_nano,
                            "end_ns": sp.end_time_unix_nano,
                            "status": sp.status.code,
                            "attributes": {kv.key: value(kv.value) for kv in sp.attributes},
                            "resource": resource,
                            "scope": ss.scope.name,
                        }) + "\n")
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print(f"otlp receiver listening on 127.0.0.1:{sys.argv[1]}", flush=True)
server.serve_forever()

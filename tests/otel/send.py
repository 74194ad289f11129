"""Send traces described by a JSON spec through the real OpenTelemetry Python SDK.

Used by FLUO's end-to-end tests to exercise the server's OTLP/gRPC and
OTLP/HTTP (protobuf) receivers with genuine exporters. Run it with the venv
made by scripts/setup-python.sh:
    send.py --endpoint http://127.0.0.1:4317 --protocol grpc|http \
            --key SECRET --spec spec.json|- [--delay-ms N] \
            [--late LABEL --late-after-ms N] [--timeout S]

Spec: {"traces": [{"service": "checkout", "resource": {...}, "spans": [
  {"id": "root", "name": "checkout", "kind": "server", "parent": null,
   "start_ms": 0, "duration_ms": 120, "attributes": {...},
   "status": "ok"|"error"|"unset", "status_message": "...", "service": "payments"}]}]}

Times are ms after the moment each trace is sent (or after the trace's
"base_unix_ms", if it has one); each trace needs one root.
Each distinct (service, resource) gets its own TracerProvider (service.name is
a resource attribute); spans of a trace share its trace id. A trace leaves as
one request per provider (<= 512 spans); --late spans follow --late-after-ms later.
Prints one JSON line: {"traces": [{"trace_id": "<32 hex>", "spans": {"<label>":
"<16 hex>"}}], "export_ok": true}. If an export fails (error on stderr), later
ones are skipped, export_ok is false and the exit code 1.
"""

import argparse
import json
import logging
import sys
import time

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

KINDS = {k.name.lower(): k for k in SpanKind}  # server, client, internal, producer, consumer
STATUSES = {"ok": StatusCode.OK, "error": StatusCode.ERROR, "unset": StatusCode.UNSET}
MS = 1_000_000  # nanoseconds per millisecond


class RecordingExporter(SpanExporter):
    """Wraps an OTLP exporter, recording whether every export call succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.ok = True
        self.closed = False

    def export(self, spans):
        if not self.ok:  # fail fast once the endpoint has failed
            return SpanExportResult.FAILURE
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.ok = False
            print(f"send.py: export of {len(spans)} span(s) failed", file=sys.stderr)
        return result

    def shutdown(self):  # every provider's processor calls this; shut down once
        if not self.closed:
            self.closed = True
            self.inner.shutdown()

    def force_flush(self, timeout_millis=30_000):
        return self.inner.force_flush(timeout_millis)


def make_exporter(args):
    headers = {"authorization": f"Bearer {args.key}"}
    endpoint = args.endpoint.rstrip("/")
    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        inner = OTLPSpanExporter(endpoint=endpoint, insecure=True, headers=headers, timeout=args.timeout)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        inner = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers, timeout=args.timeout)
    return RecordingExporter(inner)


class Providers:
    """One TracerProvider per distinct resource, all exporting through one exporter."""

    def __init__(self, exporter):
        self.exporter = exporter
        self.by_resource = {}

    def tracer(self, attributes):
        key = json.dumps(attributes, sort_keys=True)
        if key not in self.by_resource:
            provider = TracerProvider(resource=Resource.create(attributes))
            # Spans leave only on explicit flushes: one request per provider and flush.
            provider.add_span_processor(
                BatchSpanProcessor(self.exporter, schedule_delay_millis=3_600_000, max_queue_size=100_000)
            )
            self.by_resource[key] = provider
        return self.by_resource[key].get_tracer("fluo-e2e-send")

    def flush(self):
        for provider in self.by_resource.values():
            provider.force_flush()

    def shutdown(self):
        for provider in self.by_resource.values():
            provider.shutdown()


def send_trace(spec, providers, late_labels, late_after_ms):
    """Starts, ends and flushes the spans of one trace; returns their ids."""
    spans_spec = {s["id"]: s for s in spec["spans"]}
    if len(spans_spec) != len(spec["spans"]):
        raise ValueError("duplicate span id in a trace")
    roots = [label for label, s in spans_spec.items() if s.get("parent") is None]
    if len(roots) != 1:
        raise ValueError(f"a trace needs exactly one root span (parent null), got {roots}")
    resource = dict(spec.get("resource", {}))
    base = int(spec["base_unix_ms"]) * MS if "base_unix_ms" in spec else time.time_ns()
    started = {}

    def start(label, seen=()):
        if label in started:
            return started[label]
        if label not in spans_spec:
            raise ValueError(f"unknown parent span id {label!r}")
        if label in seen:
            raise ValueError(f"parent cycle through span {label!r}")
        s = spans_spec[label]
        parent = s.get("parent")
        ctx = otel_context.Context()  # roots must not inherit an ambient span
        if parent is not None:
            ctx = trace.set_span_in_context(start(parent, seen + (label,)), ctx)
        service = s.get("service", spec.get("service", "fluo-test"))
        tracer = providers.tracer({**resource, "service.name": service})
        span = tracer.start_span(
            s["name"],
            context=ctx,
            kind=KINDS[s.get("kind", "internal")],
            attributes=s.get("attributes", {}),
            start_time=base + int(s.get("start_ms", 0) * MS),
        )
        status = STATUSES[s.get("status", "unset")]
        if status is not StatusCode.UNSET:
            span.set_status(Status(status, s.get("status_message") if status is StatusCode.ERROR else None))
        started[label] = span
        return span

    for label in spans_spec:
        start(label)

    def end(label):
        s = spans_spec[label]
        started[label].end(end_time=base + int((s.get("start_ms", 0) + s.get("duration_ms", 1)) * MS))

    late = [label for label in spans_spec if label in late_labels]
    for label in spans_spec:
        if label not in late:
            end(label)
    providers.flush()
    if late:
        time.sleep(late_after_ms / 1000)
        for label in late:
            end(label)
        providers.flush()

    ids = {label: format(span.get_span_context().span_id, "016x") for label, span in started.items()}
    return {"trace_id": format(started[roots[0]].get_span_context().trace_id, "032x"), "spans": ids}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:4317")
    parser.add_argument("--protocol", choices=("grpc", "http"), required=True)
    parser.add_argument("--key", required=True, help="sent as 'Authorization: Bearer KEY'")
    parser.add_argument("--spec", required=True, help="spec JSON file, or - for stdin")
    parser.add_argument("--delay-ms", type=float, default=0, help="pause between traces")
    parser.add_argument("--late", action="append", default=[], metavar="LABEL", help="span id to send late")
    parser.add_argument("--late-after-ms", type=float, default=0)
    parser.add_argument("--timeout", type=float, default=5, help="exporter timeout in seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")

    with (sys.stdin if args.spec == "-" else open(args.spec, encoding="utf-8")) as f:
        spec = json.load(f)

    exporter = make_exporter(args)
    providers = Providers(exporter)
    results = []
    try:
        for i, trace_spec in enumerate(spec["traces"]):
            if i and args.delay_ms:
                time.sleep(args.delay_ms / 1000)
            results.append(send_trace(trace_spec, providers, set(args.late), args.late_after_ms))
    finally:
        providers.shutdown()
    print(json.dumps({"traces": results, "export_ok": exporter.ok}), flush=True)
    return 0 if exporter.ok else 1


if __name__ == "__main__":
    sys.exit(main())

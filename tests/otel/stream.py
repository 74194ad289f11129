"""Export checkout traces continuously through the real OpenTelemetry Python SDK
(OTLP/HTTP protobuf), one request per trace, and report each trace's outcome.

Used by FLUO's crash test (tests/durability.rs) while the server is killed and
restarted on the same address:
    stream.py --endpoint http://127.0.0.1:4318 --key SECRET [--delay-ms N] [--timeout S]

Every other trace charges a card without a fraud check (a violation of the
test's rule). After each trace's export the script prints one JSON line:
{"trace_id": "<32 hex>", "violating": true|false, "acknowledged": true|false}
(acknowledged: the server answered the export with success). It stops when
its standard input is closed, after finishing the trace under way.
"""

import argparse
import json
import logging
import sys
import threading
import time

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind


class LastResult(SpanExporter):
    """Wraps the OTLP exporter and remembers whether every export since the last reset succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.ok = True
        self.exported = 0

    def export(self, spans):
        result = self.inner.export(spans)
        self.exported += len(spans)
        if result is not SpanExportResult.SUCCESS:
            self.ok = False
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30_000):
        return self.inner.force_flush(timeout_millis)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--delay-ms", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    inner = OTLPSpanExporter(
        endpoint=f"{args.endpoint.rstrip('/')}/v1/traces",
        headers={"authorization": f"Bearer {args.key}"},
        timeout=args.timeout,
    )
    exporter = LastResult(inner)
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    # Spans leave on the explicit flush only: one request per trace.
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000, max_queue_size=10_000))
    tracer = provider.get_tracer("fluo-crash-test")

    n = 0
    while not stop.is_set():
        violating = n % 2 == 0
        n += 1
        exporter.ok = True
        before = exporter.exported
        root = tracer.start_span("checkout", context=otel_context.Context(), kind=SpanKind.SERVER)
        ctx = trace.set_span_in_context(root, otel_context.Context())
        if not violating:
            tracer.start_span("payment.fraud_check", context=ctx).end()
        tracer.start_span("payment.charge_card", context=ctx, kind=SpanKind.CLIENT).end()
        root.end()
        flushed = provider.force_flush(int((args.timeout + 5) * 1000))
        acknowledged = bool(flushed and exporter.ok and exporter.exported - before == (2 if violating else 3))
        trace_id = format(root.get_span_context().trace_id, "032x")
        print(json.dumps({"trace_id": trace_id, "violating": violating, "acknowledged": acknowledged}), flush=True)
        time.sleep(args.delay_ms / 1000)
    provider.shutdown()


if __name__ == "__main__":
    main()

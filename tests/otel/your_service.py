"""A stand-in for "./your-service" in README.md: an application instrumented
with the OpenTelemetry Python SDK and configured only by the SDK's standard
environment variables (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _HEADERS and
_PROTOCOL, as README.md sets them). It serves one checkout whose payment is
charged without a fraud check, flushes, and exits non-zero if the export failed.
"""

import os
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")) == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter


class Checked(OTLPSpanExporter):
    """The SDK's exporter, remembering whether every export succeeded."""

    ok = True

    def export(self, spans):
        result = super().export(spans)
        Checked.ok = Checked.ok and result == SpanExportResult.SUCCESS
        return result


provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
provider.add_span_processor(SimpleSpanProcessor(Checked()))
tracer = provider.get_tracer("your-service")
with tracer.start_as_current_span("POST /checkout", kind=trace.SpanKind.SERVER):
    with tracer.start_as_current_span("payment.charge_card", kind=trace.SpanKind.CLIENT) as span:
        span.set_attribute("payment.amount", 42)
provider.shutdown()
print("exported" if Checked.ok else "export failed")
sys.exit(0 if Checked.ok else 1)

"""Configure the OpenTelemetry SDK from the standard ``OTEL_*`` variables (``otel`` extra).

Called at the edges (CLI, server) only. The exporter reads its own settings
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``..._HEADERS``, ``..._PROTOCOL``) from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rlm_engine.errors import MissingExtraError

if TYPE_CHECKING:
    from rlm_engine.plugins.tracing import TracingPlugin

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
CAPTURE_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def tracing_from_env(env: Mapping[str, str]) -> TracingPlugin | None:
    """A tracing plugin exporting over OTLP when an OTLP endpoint is configured."""
    if not any(env.get(name) for name in ENDPOINT_VARIABLES):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise MissingExtraError(
            "exporting traces (OTEL_EXPORTER_OTLP_ENDPOINT is set)", "otel", exc.name or "otel"
        ) from exc
    from rlm_engine.plugins.tracing import TracingPlugin  # only when tracing: it loads OTel

    service = env.get("OTEL_SERVICE_NAME") or "rlm-engine"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    capture = env.get(CAPTURE_VARIABLE, "").lower() in ("1", "true", "yes")
    return TracingPlugin(provider, capture_content=capture)

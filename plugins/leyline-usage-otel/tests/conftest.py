"""Fixtures: an isolated environment, in-memory providers and a local OTLP receiver."""

from __future__ import annotations

import gzip
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from leyline_usage.plugins import reset_plugin_manager
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from leyline_usage_otel import configure_providers, reset_providers

# Only this package's plugin loads among third-party ones, whatever else the
# environment has installed. It is set before any logger loads its plugins.
os.environ["LEYLINE_USAGE_PLUGINS"] = "otel"


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Give each test its own config file, storage and plugin state, and no OTEL_*."""
    monkeypatch.setenv("LEYLINE_USAGE_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("LEYLINE_USAGE_DIR", str(tmp_path / "usage"))
    monkeypatch.delenv("LEYLINE_SESSION_ID", raising=False)
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    reset_plugin_manager()
    reset_providers()
    yield
    reset_providers()
    reset_plugin_manager()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The path that LEYLINE_USAGE_CONFIG names. The file does not exist yet."""
    return tmp_path / "config.toml"


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """A storage directory for UsageLogger."""
    return tmp_path / "usage"


@dataclass
class MemoryTelemetry:
    """SDK providers that keep metrics and log records in memory."""

    reader: InMemoryMetricReader
    exporter: InMemoryLogRecordExporter
    meter_provider: MeterProvider
    logger_provider: LoggerProvider


@pytest.fixture
def memory() -> Iterator[MemoryTelemetry]:
    """In-memory providers, given to the plugin through configure_providers."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    # The SDK leaves InMemoryLogRecordExporter.__init__ unannotated.
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    configure_providers(meter_provider=meter_provider, logger_provider=logger_provider)
    yield MemoryTelemetry(reader, exporter, meter_provider, logger_provider)
    reset_providers()
    meter_provider.shutdown()
    logger_provider.shutdown()


@dataclass
class ReceivedRequest:
    """One OTLP/HTTP request as the receiver got it, body decompressed."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class OtlpReceiver:
    """A local OTLP/HTTP endpoint that stores every request it gets."""

    endpoint: str
    requests: list[ReceivedRequest] = field(default_factory=list)

    def bodies(self, path: str) -> list[bytes]:
        """Return the bodies of the requests sent to ``path``, in arrival order."""
        return [request.body for request in self.requests if request.path == path]


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Run an OTLP/HTTP receiver on 127.0.0.1 at a free port, in a thread."""
    received: list[ReceivedRequest] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            headers = {key.lower(): value for key, value in self.headers.items()}
            with lock:
                received.append(ReceivedRequest(self.path, headers, body))
            # An empty body is a valid, empty Export*ServiceResponse message.
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest's output free of access logs

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield OtlpReceiver(f"http://{host!s}:{port}", received)
    finally:
        # Shut the plugin's providers down first, so that their final export
        # finds the receiver still listening instead of retrying until timeout.
        reset_providers()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def unused_endpoint() -> str:
    """An endpoint on 127.0.0.1 at a port that was free a moment ago.

    Connections to it are refused unless another process takes the port first.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"

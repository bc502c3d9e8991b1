"""SIEM delivery: audit records streamed as they commit to syslog (RFC 5424 over UDP, TCP, TLS)
and/or an HTTP collector, each sink from its own persisted cursor."""

from service.siem.base import Sink, SinkError, record_body
from service.siem.config import build_sinks
from service.siem.delivery import Delivery, SiemService
from service.siem.syslog import format_record, octet_frame

__all__ = [
    "Delivery",
    "SiemService",
    "Sink",
    "SinkError",
    "build_sinks",
    "format_record",
    "octet_frame",
    "record_body",
]

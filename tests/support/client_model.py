"""client_model's ``io.prometheus.client`` messages for the tests, built from field numbers.

The schema is written out here by hand (a ``FileDescriptorProto``; the upstream .proto is
not vendored) and compiled by the official ``protobuf`` package, which then decodes what
meterhub's hand-written encoder produced: ``parse_delimited(data) -> [MetricFamily]``.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]

F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
DOUBLE, UINT64, INT64, SINT32, SINT64, UINT32, INT32, STRING, MSG, ENUM = (
    F.TYPE_DOUBLE, F.TYPE_UINT64, F.TYPE_INT64, F.TYPE_SINT32, F.TYPE_SINT64, F.TYPE_UINT32,
    F.TYPE_INT32, F.TYPE_STRING, F.TYPE_MESSAGE, F.TYPE_ENUM,
)  # fmt: skip

TS = ".google.protobuf.Timestamp"
P = ".io.prometheus.client."

MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    # name: [(field, number, label, type, type_name)]
    "LabelPair": [("name", 1, OPT, STRING, ""), ("value", 2, OPT, STRING, "")],
    "Gauge": [("value", 1, OPT, DOUBLE, "")],
    "Counter": [
        ("value", 1, OPT, DOUBLE, ""),
        ("exemplar", 2, OPT, MSG, P + "Exemplar"),
        ("created_timestamp", 3, OPT, MSG, TS),
    ],
    "Quantile": [("quantile", 1, OPT, DOUBLE, ""), ("value", 2, OPT, DOUBLE, "")],
    "Summary": [
        ("sample_count", 1, OPT, UINT64, ""),
        ("sample_sum", 2, OPT, DOUBLE, ""),
        ("quantile", 3, REP, MSG, P + "Quantile"),
        ("created_timestamp", 4, OPT, MSG, TS),
    ],
    "Untyped": [("value", 1, OPT, DOUBLE, "")],
    "Histogram": [
        ("sample_count", 1, OPT, UINT64, ""),
        ("sample_count_float", 4, OPT, DOUBLE, ""),
        ("sample_sum", 2, OPT, DOUBLE, ""),
        ("bucket", 3, REP, MSG, P + "Bucket"),
        ("created_timestamp", 15, OPT, MSG, TS),
        ("schema", 5, OPT, SINT32, ""),
        ("zero_threshold", 6, OPT, DOUBLE, ""),
        ("zero_count", 7, OPT, UINT64, ""),
        ("zero_count_float", 8, OPT, DOUBLE, ""),
        ("negative_span", 9, REP, MSG, P + "BucketSpan"),
        ("negative_delta", 10, REP, SINT64, ""),
        ("negative_count", 11, REP, DOUBLE, ""),
        ("positive_span", 12, REP, MSG, P + "BucketSpan"),
        ("positive_delta", 13, REP, SINT64, ""),
        ("positive_count", 14, REP, DOUBLE, ""),
        ("exemplars", 16, REP, MSG, P + "Exemplar"),
    ],
    "Bucket": [
        ("cumulative_count", 1, OPT, UINT64, ""),
        ("cumulative_count_float", 4, OPT, DOUBLE, ""),
        ("upper_bound", 2, OPT, DOUBLE, ""),
        ("exemplar", 3, OPT, MSG, P + "Exemplar"),
    ],
    "BucketSpan": [("offset", 1, OPT, SINT32, ""), ("length", 2, OPT, UINT32, "")],
    "Exemplar": [
        ("label", 1, REP, MSG, P + "LabelPair"),
        ("value", 2, OPT, DOUBLE, ""),
        ("timestamp", 3, OPT, MSG, TS),
    ],
    "Metric": [
        ("label", 1, REP, MSG, P + "LabelPair"),
        ("gauge", 2, OPT, MSG, P + "Gauge"),
        ("counter", 3, OPT, MSG, P + "Counter"),
        ("summary", 4, OPT, MSG, P + "Summary"),
        ("untyped", 5, OPT, MSG, P + "Untyped"),
        ("histogram", 7, OPT, MSG, P + "Histogram"),
        ("timestamp_ms", 6, OPT, INT64, ""),
    ],
    "MetricFamily": [
        ("name", 1, OPT, STRING, ""),
        ("help", 2, OPT, STRING, ""),
        ("type", 3, OPT, ENUM, P + "MetricType"),
        ("metric", 4, REP, MSG, P + "Metric"),
        ("unit", 5, OPT, STRING, ""),
    ],
}
METRIC_TYPES = ["COUNTER", "GAUGE", "SUMMARY", "UNTYPED", "HISTOGRAM", "GAUGE_HISTOGRAM"]


def _build() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    ts = descriptor_pb2.FileDescriptorProto(
        name="google/protobuf/timestamp.proto", package="google.protobuf", syntax="proto3"
    )
    m = ts.message_type.add(name="Timestamp")
    m.field.add(name="seconds", number=1, label=OPT, type=INT64)
    m.field.add(name="nanos", number=2, label=OPT, type=INT32)
    pool.Add(ts)
    fd = descriptor_pb2.FileDescriptorProto(
        name="meterhub_test_metrics.proto",
        package="io.prometheus.client",
        syntax="proto2",
        dependency=["google/protobuf/timestamp.proto"],
    )
    enum = fd.enum_type.add(name="MetricType")
    for i, n in enumerate(METRIC_TYPES):
        enum.value.add(name=n, number=i)
    for name, fields in MESSAGES.items():
        msg = fd.message_type.add(name=name)
        for fname, number, label, ftype, tname in fields:
            f = msg.field.add(name=fname, number=number, label=label, type=ftype)
            if tname:
                f.type_name = tname
    pool.Add(fd)
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName("io.prometheus.client." + name)
        )
        for name in MESSAGES
    }


CLASSES = _build()
MetricFamilyPB = CLASSES["MetricFamily"]


def parse_delimited(data: bytes) -> list[Any]:
    """Every length-prefixed ``MetricFamily`` of *data*; fails on trailing garbage."""
    out = []
    pos = 0
    while pos < len(data):
        size, pos = _DecodeVarint(data, pos)
        msg = MetricFamilyPB()
        msg.ParseFromString(data[pos : pos + size])
        assert len(data[pos : pos + size]) == size, "truncated message"
        out.append(msg)
        pos += size
    return out


def encode_delimited(families: list[Any]) -> bytes:
    """What an official encoder writes (for the parser's tests)."""
    from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]

    return b"".join(_VarintBytes(m.ByteSize()) + m.SerializeToString() for m in families)

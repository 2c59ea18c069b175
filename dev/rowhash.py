"""An independent implementation of auditd's row hash (docs/row-hash.md), in Python.

Used by the tests to check that auditd's hashes of what Milvus wrote to Kafka equal hashes computed
from what the client inserted. Depends only on the `xxhash` package (XXH3-64, seed 0).
"""
import struct

import xxhash

BOOL, INT8, INT16, INT32, INT64, FLOAT, DOUBLE = 1, 2, 3, 4, 5, 10, 11
STRING, VARCHAR, ARRAY, JSON = 20, 21, 22, 23
BINARY_VECTOR, FLOAT_VECTOR, FLOAT16_VECTOR, BFLOAT16_VECTOR = 100, 101, 102, 103


def scalar_bytes(data_type, value):
    """Canonical bytes of one scalar value."""
    if data_type == BOOL:
        return b"\x01" if value else b"\x00"
    if data_type in (INT8, INT16, INT32, INT64):
        return struct.pack("<q", int(value))
    if data_type == FLOAT:
        return struct.pack("<f", float(value))
    if data_type == DOUBLE:
        return struct.pack("<d", float(value))
    if data_type in (STRING, VARCHAR):
        return value.encode("utf-8")
    raise ValueError(f"not a scalar type: {data_type}")


def value_bytes(data_type, value, element_type=None):
    """Canonical bytes of one field value of one row."""
    if data_type == JSON:
        # JSON is hashed as the exact text bytes the client sent.
        return value if isinstance(value, (bytes, bytearray)) else value.encode("utf-8")
    if data_type == FLOAT_VECTOR:
        return struct.pack("<%df" % len(value), *value)
    if data_type in (BINARY_VECTOR, FLOAT16_VECTOR, BFLOAT16_VECTOR):
        return bytes(value)
    if data_type == ARRAY:
        out = [struct.pack("<iI", element_type, len(value))]
        for element in value:
            encoded = scalar_bytes(element_type, element)
            out.append(struct.pack("<I", len(encoded)) + encoded)
        return b"".join(out)
    return scalar_bytes(data_type, value)


def row_hash(fields):
    """fields: iterable of (field_id, data_type, value, element_type or None). Returns 16 hex digits."""
    message = bytearray()
    for field_id, data_type, value, element_type in sorted(fields, key=lambda f: f[0]):
        encoded = value_bytes(data_type, value, element_type)
        message += struct.pack("<qiI", field_id, data_type, len(encoded))
        message += encoded
    return "%016x" % xxhash.xxh3_64_intdigest(bytes(message))

"""Column-wise encoding of feature rows for the wide SQLite online store (lib/online_sqlite.py).

A row of the store holds all of a feature view's values for one entity as one blob: a
serialized feast.types.RepeatedValue, i.e. for each feature (in the layout's order) the bytes
0x0A, varint(len(v)), v where v is the feature's serialized ValueProto, exactly as Feast's
writer would serialize it. Reading a row is one RepeatedValue.FromString call.

Here the blobs of a whole Arrow table are built column by column, without a Python object per
value: double, int64 and timestamp columns are encoded with numpy (tag byte + little-endian
double, tag byte + varint); other types go through Feast's python_values_to_proto_values once
per distinct value and are spread with Arrow's take. Each column's entries are then joined row
by row with pyarrow.compute.binary_join_element_wise. Null entries (and NaN doubles) are Feast's
own encoding of the column's null value. tests/unit/test_online_codec.py compares every encoder
with Feast's per-value conversion, and the entity keys with serialize_entity_key.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import RepeatedValue
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

ENTRY_TAG = RepeatedValue(val=[ValueProto()]).SerializeToString()[:1]  # field 1, length-delimited
_VARINT_TYPES = {ValueType.INT64: "int64_val", ValueType.UNIX_TIMESTAMP: "unix_timestamp_val"}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def entry(value: ValueProto) -> bytes:
    """One feature's entry in a row blob."""
    raw = value.SerializeToString()
    return ENTRY_TAG + _varint(len(raw)) + raw


def decode(blob: bytes):
    """The ValueProtos of a row blob, in layout order."""
    return RepeatedValue.FromString(blob).val


def _tag(field: str) -> int:
    """The key byte of a scalar field of ValueProto (Feast's own schema, not hard-coded)."""
    raw = ValueProto(**{field: 1}).SerializeToString()
    if len(raw) < 2:
        raise RuntimeError(f"ValueProto.{field}: unexpected encoding {raw!r}")
    return raw[0]


def _from_matrix(matrix: np.ndarray, lengths: np.ndarray) -> pa.BinaryArray:
    """A binary array whose row i is matrix[i, :lengths[i]]."""
    keep = np.arange(matrix.shape[1])[None, :] < lengths[:, None]
    data = np.ascontiguousarray(matrix[keep])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.BinaryArray.from_buffers(pa.binary(), len(lengths),
                                       [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _null_entry(column: pa.Array, value_type: ValueType) -> bytes:
    """Feast's entry for the column's null, converted from what Feast's writer would see."""
    nulls = column.filter(pc.is_null(column, nan_is_null=pa.types.is_floating(column.type)))
    sample = nulls.slice(0, 1).to_numpy(zero_copy_only=False)
    return entry(python_values_to_proto_values(sample, value_type)[0])


def _with_nulls(matrix: np.ndarray, lengths: np.ndarray, null: np.ndarray, null_entry: bytes) -> None:
    if null.any():
        if len(null_entry) > matrix.shape[1]:
            raise RuntimeError(f"null entry {null_entry!r} wider than the column's entries")
        matrix[null, :len(null_entry)] = np.frombuffer(null_entry, dtype=np.uint8)
        lengths[null] = len(null_entry)


def _double_entries(column: pa.Array) -> pa.BinaryArray:
    n = len(column)
    values = column.fill_null(0.0).to_numpy(zero_copy_only=False).astype("<f8", copy=False)
    matrix = np.empty((n, 11), dtype=np.uint8)
    matrix[:, :3] = (ENTRY_TAG[0], 9, _tag("double_val"))
    matrix[:, 3:] = values.view(np.uint8).reshape(n, 8)
    lengths = np.full(n, 11, dtype=np.int32)
    null = np.isnan(values) | column.is_null().to_numpy(zero_copy_only=False)
    if null.any():
        _with_nulls(matrix, lengths, null, _null_entry(column, ValueType.DOUBLE))
    return _from_matrix(matrix, lengths)


def _varint_entries(column: pa.Array, value_type: ValueType) -> pa.BinaryArray:
    n = len(column)
    if pa.types.is_timestamp(column.type):  # Feast: datetime64 -> datetime64[s] -> int
        seconds = column.cast(pa.timestamp(column.type.unit)).to_numpy(zero_copy_only=False)
        ints = seconds.astype("datetime64[s]").astype(np.int64)
    else:
        ints = column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    u = np.asarray(ints, dtype=np.int64).view(np.uint64)
    groups = np.stack([(u >> np.uint64(7 * k)) for k in range(10)], axis=1)
    nbytes = 1 + (groups[:, 1:] != 0).sum(axis=1)
    matrix = np.empty((n, 13), dtype=np.uint8)
    matrix[:, 0] = ENTRY_TAG[0]
    matrix[:, 1] = 1 + nbytes
    matrix[:, 2] = _tag(_VARINT_TYPES[value_type])
    more = np.arange(10)[None, :] < (nbytes - 1)[:, None]
    matrix[:, 3:] = (groups & np.uint64(0x7F)).astype(np.uint8) | (more.astype(np.uint8) << 7)
    lengths = (3 + nbytes).astype(np.int32)
    null = column.is_null().to_numpy(zero_copy_only=False)
    if null.any():
        _with_nulls(matrix, lengths, null, _null_entry(column, value_type))
    return _from_matrix(matrix, lengths)


def _distinct_entries(column: pa.Array, value_type: ValueType) -> pa.BinaryArray:
    """Feast's conversion of each distinct value once, spread to the rows with take."""
    encoded = pc.dictionary_encode(column)
    uniques = encoded.dictionary.to_numpy(zero_copy_only=False)
    found = [entry(v) for v in python_values_to_proto_values(uniques, value_type)] if len(uniques) else []
    if encoded.null_count:
        found.append(_null_entry(column, value_type))
    indices = encoded.indices.fill_null(len(found) - 1)
    return pa.array(found, pa.binary()).take(indices)


def column_entries(column: pa.Array | pa.ChunkedArray, value_type: ValueType) -> pa.BinaryArray:
    """Each row's entry for one feature column (one Arrow array, nulls allowed)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if value_type == ValueType.DOUBLE and pa.types.is_floating(column.type):
        return _double_entries(column)
    if value_type == ValueType.INT64 and pa.types.is_integer(column.type):
        return _varint_entries(column, value_type)
    if value_type == ValueType.UNIX_TIMESTAMP and pa.types.is_timestamp(column.type):
        return _varint_entries(column, value_type)
    return _distinct_entries(column, value_type)


def row_blobs(entries: list[pa.BinaryArray]) -> pa.BinaryArray:
    """The blob of each row: its entries joined in layout order."""
    if not entries:
        raise ValueError("a feature view without features has nothing to store")
    return pc.binary_join_element_wise(*entries, b"")


def entity_keys(columns: dict[str, pa.Array], types: dict[str, ValueType], version: int) -> pa.BinaryArray:
    """serialize_entity_key of each row's join key values. One string join key (this repo's
    customer) is built column-wise; other keys row by row with Feast's function."""
    columns = {k: c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for k, c in columns.items()}
    for name, col in columns.items():
        if col.null_count:
            raise ValueError(f"join key {name} has {col.null_count} null value(s)")
    if len(columns) == 1 and version >= 3 and next(iter(types.values())) == ValueType.STRING:
        [(name, col)] = columns.items()
        sample = serialize_entity_key(EntityKeyProto(join_keys=[name], entity_values=[ValueProto(string_val="")]),
                                      entity_key_serialization_version=version)
        prefix = sample[:-4]
        utf8 = col.cast(pa.string()).cast(pa.binary())
        lengths = pc.binary_length(utf8).to_numpy(zero_copy_only=False).astype("<u4")
        size = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(col), [None, pa.py_buffer(lengths.tobytes())])
        return pc.binary_join_element_wise(pa.scalar(prefix, pa.binary()), size.cast(pa.binary()), utf8, b"")
    names = list(columns)
    protos = {k: python_values_to_proto_values(columns[k].to_numpy(zero_copy_only=False), types[k]) for k in names}
    return pa.array([serialize_entity_key(EntityKeyProto(join_keys=names, entity_values=[protos[k][i] for k in names]),
                                          entity_key_serialization_version=version)
                     for i in range(len(columns[names[0]]))], pa.binary())


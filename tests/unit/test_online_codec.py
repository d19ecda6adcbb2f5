"""lib.online_codec: column-wise row blobs and entity keys against Feast's per-value encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from ltv_pipeline.lib import online_codec

COLUMNS = {
    "double": (ValueType.DOUBLE, pa.array(
        [1.5, None, float("nan"), -0.0, 0.0, float("inf"), float("-inf"), 1e300, 5e-324, -2.25], pa.float64())),
    "int64": (ValueType.INT64, pa.array(
        [0, 1, 127, 128, 300, -1, None, 2**52, -(2**52), 16384], pa.int64())),
    "bool": (ValueType.BOOL, pa.array([True, False, None, True, True, False, None, False, True, True])),
    "string": (ValueType.STRING, pa.array(["DE", "", None, "ünï", "DE", "x" * 200, "US", None, "a", "b"])),
    "timestamp": (ValueType.UNIX_TIMESTAMP, pa.array(
        [pd.Timestamp("2025-09-30 23:59:59.999999"), pd.Timestamp("1969-12-31 23:59:59.5"), None,
         pd.Timestamp("1970-01-01"), pd.Timestamp("2262-04-11"), pd.Timestamp("1900-01-01 00:00:00.25"),
         pd.Timestamp("2025-01-01 12:00"), pd.Timestamp("2025-01-01 12:00:01"), None,
         pd.Timestamp("2001-02-03 04:05:06")], pa.timestamp("us", "UTC"))),
}


def feast_entries(column: pa.Array, value_type: ValueType) -> list[bytes]:
    """What Feast's writer stores for each value (utils._columns_to_proto_values)."""
    return [online_codec.entry(v) for v in
            python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)]


@pytest.mark.parametrize("kind", sorted(COLUMNS))
def test_column_entries_equal_feasts_encoding_of_every_value(kind):
    value_type, column = COLUMNS[kind]
    got = online_codec.column_entries(column, value_type).to_pylist()
    assert got == feast_entries(column, value_type)
    without_nulls = column.filter(column.is_valid())
    assert online_codec.column_entries(without_nulls, value_type).to_pylist() == feast_entries(without_nulls, value_type)


def test_int64_extremes_without_nulls_encode_as_feast_does():
    column = pa.array([2**62, -(2**63), 2**63 - 1, -(2**31), 2**35 + 1], pa.int64())
    assert online_codec.column_entries(column, ValueType.INT64).to_pylist() == feast_entries(column, ValueType.INT64)


def test_int_column_with_nulls_encodes_as_feast_does_after_pandas_made_it_float():
    # Feast's write_to_online_store gets a DataFrame: an int column with nulls arrives as float64
    column = pa.array([3, None, 400, -7], pa.int64())
    as_float = pa.Table.from_pandas(pa.table({"c": column}).to_pandas()).column("c").combine_chunks()
    assert as_float.type == pa.float64()
    assert online_codec.column_entries(column, ValueType.INT64).to_pylist() == feast_entries(as_float, ValueType.INT64)


def test_row_blob_decodes_to_the_values_in_layout_order():
    entries = [online_codec.column_entries(COLUMNS[k][1], COLUMNS[k][0]) for k in sorted(COLUMNS)]
    blobs = online_codec.row_blobs(entries).to_pylist()
    for row, blob in enumerate(blobs):
        values = online_codec.decode(blob)
        assert len(values) == len(COLUMNS)
        for i, kind in enumerate(sorted(COLUMNS)):
            value_type, column = COLUMNS[kind]
            expected = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)[row]
            assert values[i] == expected, (kind, row)
    assert online_codec.decode(blobs[2])[sorted(COLUMNS).index("string")] == ValueProto()  # a null


def test_string_entity_keys_equal_serialize_entity_key():
    ids = ["u001", "", "ü-ß", "x" * 300, "42", "a b"]
    got = online_codec.entity_keys({"user_id": pa.array(ids)}, {"user_id": ValueType.STRING}, 3).to_pylist()
    assert got == [serialize_entity_key(EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(string_val=i)]),
                                        entity_key_serialization_version=3) for i in ids]


def test_other_entity_keys_use_feasts_function_and_null_keys_are_refused():
    got = online_codec.entity_keys({"n": pa.array([1, 2**40])}, {"n": ValueType.INT64}, 3).to_pylist()
    assert got == [serialize_entity_key(EntityKeyProto(join_keys=["n"], entity_values=[ValueProto(int64_val=i)]),
                                        entity_key_serialization_version=3) for i in (1, 2**40)]
    with pytest.raises(ValueError, match="join key user_id has 1 null"):
        online_codec.entity_keys({"user_id": pa.array(["a", None])}, {"user_id": ValueType.STRING}, 3)


def test_a_large_column_is_encoded_without_a_python_object_per_value():
    rng = np.random.default_rng(0)
    values = rng.normal(size=200_000) * 1e3
    values[::7] = np.nan
    column = pa.array(values, from_pandas=False)
    got = online_codec.column_entries(column, ValueType.DOUBLE)
    assert got.to_pylist()[:1000] == feast_entries(column.slice(0, 1000), ValueType.DOUBLE)
    assert len(got) == 200_000

"""The one entity: a customer, keyed by the input contract's user_id (a string)."""

from feast import Entity
from feast.value_type import ValueType

customer = Entity(
    name="customer",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A customer of the input contract (transactions.user_id / users.user_id).",
    tags={"owner": "ltv_pipeline"},
)

"""The input contract (DESIGN.md), as data: table names, columns, logical types.

Loaders validate against it, the generator writes it, the warehouse's raw schema stores it.
Logical types: "id" (string), "timestamp", "date", "float", "bool", "string".
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableContract:
    name: str  # file stem in an input directory and table name in the raw schema
    required: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> dict[str, str]:
        return {**self.required, **self.optional}


TRANSACTIONS = TableContract(
    "transactions",
    required={"user_id": "id", "ts": "timestamp", "amount": "float"},
    optional={
        "transaction_id": "id",
        "currency": "string",
        "is_refund": "bool",
        "variable_cost": "float",
        "channel": "string",
        "sku": "string",
        "country": "string",
    },
)
# A transactions row is one line. Rows sharing a transaction_id are lines of one transaction
# (an order's items, a purchase and its refund); a row is the same line delivered twice only
# when it equals an earlier row with that transaction_id in every one of these columns.
TRANSACTION_LINE_COLUMNS: tuple[str, ...] = tuple(TRANSACTIONS.columns)

USERS = TableContract(
    "users",
    required={"user_id": "id"},
    optional={
        "signup_ts": "timestamp",
        "country": "string",
        "device": "string",
        "acquisition_source": "string",
    },
)
EVENTS = TableContract(
    "events",
    required={"user_id": "id", "ts": "timestamp", "event_name": "string"},
    optional={"metadata_json": "string"},
)
FX_RATES = TableContract(
    "fx_rates",
    required={"date": "date", "currency": "string", "rate_to_base": "float"},
)

CONTRACTS: dict[str, TableContract] = {
    c.name: c for c in (TRANSACTIONS, USERS, EVENTS, FX_RATES)
}
OPTIONAL_TABLES = ("users", "events", "fx_rates")

# Event names the pipeline understands (features count them); others are quarantined.
EVENT_NAMES = ("session_start", "product_view", "add_to_cart", "checkout_start")

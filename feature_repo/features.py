"""Feature views over the mart exports: typed schemas that match the dbt marts' columns.

Each view carries a cutoff marker field (named in its "cutoff_field" tag): the ISO date of the
cutoff its row was computed for. A row describes the customer on its cutoff day only, so ttl
is that day: a point-in-time lookup at cutoff D (D 23:59:59.999999) sees D's row or nothing,
never an older cutoff's (whose recency, windows and totals describe another day;
lib.feature_store would refuse it as stale), and the offline store reads the files of the
requested cutoffs only, however many dates the exports hold (lib/feast_offline.py).
"""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Bool, Float64, Int64, String, UnixTimestamp

from data_sources import customer_btyd_summary_source, customer_features_source
from entities import customer

# The cutoff day: [D 00:00, D 23:59:59.999999] for a lookup at the end of D. With 400 days (the
# value until session 33) a lookup read every export of the year before it: at 1M users with 33
# scored dates, 24 s and 17 GB for one date's retrieval.
FEATURE_TTL = timedelta(days=1) - timedelta(microseconds=1)

customer_features = FeatureView(
    name="customer_features",
    description="Everything a model may know about a customer at the end of cutoff day D "
    "(marts.customer_features; amounts in the base currency, revenue net of refunds).",
    entities=[customer],
    ttl=FEATURE_TTL,
    online=True,
    source=customer_features_source,
    schema=[
        Field(name="feature_cutoff_date", dtype=String,
              description="Cutoff D of this row (YYYY-MM-DD): the marker checked on retrieval."),
        # Flags
        Field(name="is_cold_start", dtype=Bool, description="No purchase before D + 1 day."),
        Field(name="has_signup", dtype=Bool, description="A signup before D + 1 day is known."),
        # RFM and tenure
        Field(name="n_orders", dtype=Int64),
        Field(name="n_purchase_days", dtype=Int64),
        Field(name="frequency", dtype=Int64, description="Purchase days minus one."),
        Field(name="recency_days", dtype=Int64, description="Days since the last purchase day."),
        Field(name="tenure_days", dtype=Int64, description="Days since the first purchase day."),
        Field(name="days_since_signup", dtype=Int64),
        Field(name="monetary_mean", dtype=Float64),
        Field(name="monetary_max", dtype=Float64),
        Field(name="monetary_std", dtype=Float64),
        # Totals
        Field(name="revenue_total", dtype=Float64),
        Field(name="gross_revenue_total", dtype=Float64),
        Field(name="refund_amount_total", dtype=Float64),
        Field(name="margin_total", dtype=Float64),
        Field(name="n_refunds", dtype=Int64),
        # Windows over the last N days
        Field(name="revenue_30d", dtype=Float64),
        Field(name="orders_30d", dtype=Int64),
        Field(name="revenue_90d", dtype=Float64),
        Field(name="orders_90d", dtype=Int64),
        Field(name="revenue_180d", dtype=Float64),
        Field(name="orders_180d", dtype=Int64),
        Field(name="revenue_365d", dtype=Float64),
        Field(name="orders_365d", dtype=Int64),
        # Rhythm and trend
        Field(name="interpurchase_mean_days", dtype=Float64),
        Field(name="interpurchase_std_days", dtype=Float64),
        Field(name="decayed_revenue", dtype=Float64),
        Field(name="revenue_prev_90d", dtype=Float64),
        Field(name="revenue_trend_90d", dtype=Float64),
        # Refunds and margin
        Field(name="refund_rate", dtype=Float64),
        Field(name="refund_amount_share", dtype=Float64),
        Field(name="margin_share", dtype=Float64),
        # Diversity and timing
        Field(name="n_channels", dtype=Int64),
        Field(name="n_skus", dtype=Int64),
        Field(name="weekend_order_share", dtype=Float64),
        Field(name="top_weekday", dtype=Int64, description="ISO weekday with most orders."),
        Field(name="top_season", dtype=String),
        # Behaviour (events)
        Field(name="sessions_30d", dtype=Int64),
        Field(name="product_views_30d", dtype=Int64),
        Field(name="cart_adds_30d", dtype=Int64),
        Field(name="checkouts_30d", dtype=Int64),
        Field(name="abandoned_cart_days_30d", dtype=Int64),
        Field(name="cart_abandonment_rate_30d", dtype=Float64),
        Field(name="sessions_90d", dtype=Int64),
        Field(name="product_views_90d", dtype=Int64),
        Field(name="cart_adds_90d", dtype=Int64),
        Field(name="checkouts_90d", dtype=Int64),
        Field(name="abandoned_cart_days_90d", dtype=Int64),
        Field(name="cart_abandonment_rate_90d", dtype=Float64),
        Field(name="n_events", dtype=Int64),
        Field(name="days_since_last_event", dtype=Int64),
        # Attributes
        Field(name="country", dtype=String),
        Field(name="device", dtype=String),
        Field(name="acquisition_source", dtype=String),
        Field(name="signup_cohort", dtype=String, description="YYYY-MM-DD, first day of month."),
        # Leakage audit, not a model input
        Field(name="max_source_ts", dtype=UnixTimestamp,
              description="Latest source timestamp behind the row (< D + 1 day)."),
    ],
    tags={"dbt_model": "customer_features", "cutoff_field": "feature_cutoff_date"},
    owner="ltv_pipeline",
)

customer_btyd_summary = FeatureView(
    name="customer_btyd_summary",
    description="lifetimes' BTYD summary at day granularity with observation end D, for "
    "customers with a purchase before D + 1 day (marts.customer_btyd_summary).",
    entities=[customer],
    ttl=FEATURE_TTL,
    online=True,
    source=customer_btyd_summary_source,
    schema=[
        Field(name="btyd_cutoff_date", dtype=String,
              description="Cutoff D of this row (YYYY-MM-DD): the marker checked on retrieval."),
        Field(name="frequency", dtype=Int64, description="Distinct purchase days minus one."),
        Field(name="recency", dtype=Int64, description="Days from first to last purchase day."),
        Field(name="T", dtype=Int64, description="Days from the first purchase day to D."),
        Field(name="monetary_value", dtype=Float64,
              description="Mean net total of the repeat purchase days (0 when frequency is 0)."),
        Field(name="mean_order_value", dtype=Float64,
              description="Mean net total of every purchase day, the first included."),
        Field(name="max_source_ts", dtype=UnixTimestamp,
              description="Latest transaction timestamp used (< D + 1 day)."),
    ],
    tags={"dbt_model": "customer_btyd_summary", "cutoff_field": "btyd_cutoff_date"},
    owner="ltv_pipeline",
)

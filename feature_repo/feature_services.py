"""Versioned feature services: what each model family reads, pinned by name.

A service's feature list is explicit so that a new mart column changes no existing version:
add the column to a new version (ltv_model_v2) and move the models to it. The cutoff markers
and max_source_ts are bookkeeping, not model inputs, and are in no service.
"""

from feast import FeatureService

from features import customer_btyd_summary, customer_features

LTV_MODEL_V1_FEATURES = [
    "is_cold_start", "has_signup",
    "n_orders", "n_purchase_days", "frequency", "recency_days", "tenure_days",
    "days_since_signup", "monetary_mean", "monetary_max", "monetary_std",
    "revenue_total", "gross_revenue_total", "refund_amount_total", "margin_total", "n_refunds",
    "revenue_30d", "orders_30d", "revenue_90d", "orders_90d",
    "revenue_180d", "orders_180d", "revenue_365d", "orders_365d",
    "interpurchase_mean_days", "interpurchase_std_days", "decayed_revenue",
    "revenue_prev_90d", "revenue_trend_90d",
    "refund_rate", "refund_amount_share", "margin_share",
    "n_channels", "n_skus", "weekend_order_share", "top_weekday", "top_season",
    "sessions_30d", "product_views_30d", "cart_adds_30d", "checkouts_30d",
    "abandoned_cart_days_30d", "cart_abandonment_rate_30d",
    "sessions_90d", "product_views_90d", "cart_adds_90d", "checkouts_90d",
    "abandoned_cart_days_90d", "cart_abandonment_rate_90d",
    "n_events", "days_since_last_event",
    "country", "device", "acquisition_source", "signup_cohort",
]

BTYD_V1_FEATURES = ["frequency", "recency", "T", "monetary_value", "mean_order_value"]

ltv_model_v1 = FeatureService(
    name="ltv_model_v1",
    features=[customer_features[LTV_MODEL_V1_FEATURES]],
    description="Inputs of the gradient-boosting models (LightGBM family), version 1.",
    tags={"models": "gbm", "version": "1"},
    owner="ltv_pipeline",
)

btyd_v1 = FeatureService(
    name="btyd_v1",
    features=[customer_btyd_summary[BTYD_V1_FEATURES]],
    description="The BTYD summary (frequency, recency, T, monetary_value, mean_order_value; days), version 1.",
    tags={"models": "btyd", "version": "1"},
    owner="ltv_pipeline",
)

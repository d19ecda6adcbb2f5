"""ltv_pipeline: customer lifetime value forecasts as an orchestrated asset graph."""

import dagster as dg

from ltv_pipeline.defs.training.assets import btyd_models, cohort_forecast, gbm_models, rfm_stack_model

defs = dg.Definitions(assets=[btyd_models, gbm_models, rfm_stack_model, cohort_forecast])

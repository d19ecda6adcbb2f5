"""Features domain: the Feast registry and the online store. Its assets need the shared
warehouse_db resource (defs/resources.shared_resources), merged in ltv_pipeline/definitions.py."""

import dagster as dg

from ltv_pipeline.defs.features.assets import feast_registry, online_features

defs = dg.Definitions(assets=[feast_registry, online_features])

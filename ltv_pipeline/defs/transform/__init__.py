"""Transform domain: dbt models as assets. Its dbt assets need the shared warehouse_db
resource (defs/resources.shared_resources), merged in ltv_pipeline/definitions.py."""

import dagster as dg

from ltv_pipeline.defs.transform.assets import build_dbt_assets
from ltv_pipeline.defs.transform.resources import dbt_resource

defs = dg.Definitions(assets=[build_dbt_assets()], resources={"dbt": dbt_resource()})

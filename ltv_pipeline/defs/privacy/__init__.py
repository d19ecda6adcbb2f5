"""Privacy domain: the erasure job (erase_users_job) for lists of ids, the job behind
`ltv forget` for one id. Needs the shared warehouse_db resource (definitions.py)."""

import dagster as dg

from ltv_pipeline.defs.privacy.jobs import erase_users_job

defs = dg.Definitions(jobs=[erase_users_job])

"""The daily partitions of scoring and monitoring: one object, imported everywhere.

A partition key is a scoring date D (YYYY-MM-DD): the partition holds what is computed as of
the end of D under the time rule (history ts < D + 1 day). The range starts at the loaded data's
first transaction date (settings.partitions_start, read when the definitions load; reload the
code location in the UI after loading a source with an earlier start) and ends yesterday, the
last complete day: the daily schedule asks for it.
"""

from datetime import date, timedelta

import dagster as dg

from ltv_pipeline import settings

# Days the partitions run past the machine's yesterday: settings.today() (LTV_TODAY, as `ltv
# predict` sets it for a cutoff after the machine's date) less the machine's date, when later.
END_OFFSET_DAYS = (settings.today() - date.today()).days

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.partitions_start(), end_offset=END_OFFSET_DAYS, fmt="%Y-%m-%d"
)


def has_partition(day: date | str) -> bool:
    """Whether `day` is a key of daily_partitions as loaded in this process."""
    key = day if isinstance(day, str) else day.isoformat()
    yesterday = (date.today() + timedelta(days=END_OFFSET_DAYS - 1)).isoformat()
    return daily_partitions.start.strftime("%Y-%m-%d") <= key <= yesterday

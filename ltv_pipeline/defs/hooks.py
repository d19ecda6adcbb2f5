"""Job hooks: after every step (success or failure), freed memory goes back to the OS
(lib/memory.py), so an in-process run's peak is its largest step, not the sum of its steps'
leftovers."""

import dagster as dg

from ltv_pipeline.lib import memory


@dg.success_hook(name="release_memory_on_success")
def release_memory_on_success(context: dg.HookContext) -> None:
    memory.release()


@dg.failure_hook(name="release_memory_on_failure")
def release_memory_on_failure(context: dg.HookContext) -> None:
    memory.release()


RELEASE_MEMORY = {release_memory_on_success, release_memory_on_failure}

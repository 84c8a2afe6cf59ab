"""Running notebook jobs here: one after another, or in a pool of worker processes."""
from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from nbforget.batch.notebooks import Failure, Job, describe_error, execute_job, run_in_worker


def execute_all(jobs: list[Job], *, workers: int, progress: bool, description: str,
                 already_done: int = 0) -> list[Failure]:
    """Execute `jobs` with `workers` processes; a tqdm bar shows done / running / failed.

    Jobs run in the order given; a job waits until every job of an earlier phase has finished.
    """
    from tqdm.auto import tqdm

    failures: list[Failure] = []
    total = len(jobs) + already_done
    bar = tqdm(total=total, initial=already_done, desc=description, unit="notebook", disable=not progress,
               dynamic_ncols=True)
    counts = {"done": already_done, "running": 0, "failed": 0}

    def show(current: str = "") -> None:
        bar.set_postfix(counts | ({"now": current} if current else {}), refresh=True)

    def finished(job: Job, failure: Failure | None) -> None:
        counts["running"] -= 1
        if failure is None:
            counts["done"] += 1
        else:
            counts["failed"] += 1
            failures.append(failure)
            bar.write(f"failed: {job.label}: {failure.error}")
        bar.update(1)
        show()

    show()
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            counts["running"] += 1
            show(job.label)
            finished(job, execute_job(job))
    else:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: dict[Future, Job] = {}
            queue = list(jobs)
            while queue or pending:
                while queue and len(pending) < workers and all(
                        running.phase >= queue[0].phase for running in pending.values()):
                    job = queue.pop(0)
                    try:
                        pending[pool.submit(run_in_worker, job, threads)] = job
                    except BrokenProcessPool as error:  # a worker died: report the rest, do not crash
                        for lost in [job, *queue]:
                            counts["running"] += 1
                            finished(lost, Failure(lost.source, None, f"not executed: {describe_error(error)} "
                                                                      "(rerun with --workers 1 to see why)"))
                        queue.clear()
                        break
                    counts["running"] += 1
                show()
                if not pending:
                    break
                completed, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in completed:
                    job = pending.pop(future)
                    try:
                        failure = future.result()
                    except Exception as error:  # noqa: BLE001 - a crashed worker is one failure
                        failure = Failure(job.source, None, describe_error(error))
                    finished(job, failure)
    bar.close()
    return failures

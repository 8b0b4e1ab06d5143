"""The jobs: one module per job with `run(ctx)` over a `medlake.runtime.JobContext`, which
returns a `medlake.runtime.JobResult` (exit code, failed gates, the figures it reports).

`lakehouse run <job>` and `spark-submit medlake/jobs/<job>.py ARGS` (each module's `__main__`,
through `medlake.cli.submit`) dispatch here. Jobs compose the library (bronze, silver, gold,
ml, governance); nothing below them imports a job.
"""

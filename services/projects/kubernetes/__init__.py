"""The ``kubernetes`` project backend: the project's image, pushed, run as a ``batch/v1`` Job.

Modules, one job each: ``config`` (the backend configuration), ``cluster`` (an API client for
a kube context or the in-cluster service account), ``template`` (the Job made from the user's
template), ``job_status`` (Job and pod states as run statuses), ``pod_logs`` (following the
pods' output), ``submitted`` (one run: watch, logs, cancel, end) and ``backend`` (submission and
adoption of Jobs a previous service instance left running).
"""

"""The run-lease table (created by migrations/versions/p0001_run_leases.py).

One row per active run: which replica owns it until when, and what its backend needs to find the
run again (a process group, a container, a Job). Times are epoch milliseconds of the replicas'
clocks, which must agree to well within the lease period.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

leases = sa.Table(
    "mlgrid_project_leases",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    # SHA-256 of the tracking store URI the run lives in: replicas of another stack sharing this
    # database (or a state directory) leave the run alone.
    sa.Column("scope", sa.String(64), nullable=False),
    # The owning replica: a fresh id per service instance, its host, pid and pid start time
    # (a replica on the same host may take over at once from an owner whose process is gone).
    sa.Column("owner", sa.String(32), nullable=False),
    sa.Column("owner_host", sa.String(255), nullable=False),
    sa.Column("owner_pid", sa.Integer, nullable=False),
    sa.Column("owner_start", sa.String(64), nullable=True),
    # Where the owner serves (host:port; NULL until it is bound): other replicas relay the run's
    # log stream from there (p0002).
    sa.Column("owner_address", sa.String(300), nullable=True),
    sa.Column("backend", sa.String(200), nullable=False),
    # The backend's handle (OwnedHandle.details) as JSON.
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
    # Set by a replica that was asked to cancel a run another one owns; the owner cancels it at
    # its next heartbeat.
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Index("ix_mlgrid_project_leases_owner", "owner"),
    sa.Index("ix_mlgrid_project_leases_expires", "expires_ms"),
)

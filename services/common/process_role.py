"""Whether this process is a long-lived service (``mlgrid server <name>``, one per process).

Such a process runs for days, so modules it needs only once at start should not stay loaded:
migrating a database that is not yet at the newest revision (a fresh PostgreSQL or MySQL
database; SQLite is created from its snapshot) loads Alembic, ~10 MiB of RSS per service that
were never given back. A long-lived service therefore migrates in a short-lived child process
(sql.upgrade_database); everything else (embedded mode, ``mlgrid db upgrade``, tests that open
stores) migrates in-process as before.
"""

from __future__ import annotations

#: Set by launcher.serve_service before the service opens its stores.
long_lived_service = False

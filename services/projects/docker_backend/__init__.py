"""The ``docker`` backend: projects with a ``docker_env`` run in a container on any Docker Engine
API (``DOCKER_HOST``). See backend.py."""

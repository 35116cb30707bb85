"""The projects service: runs MLproject directories and git repositories on a backend."""

"""The artifacts service: files of runs and models, in a repository chosen by URI scheme."""

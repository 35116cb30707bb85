"""The gateway: one public port that routes every mlgrid call by (service, scheme) to a backend.

See README.md in this folder for the routing rules and the config file format.
"""

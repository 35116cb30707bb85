"""Authentication and authorization shared by the gateway and every service (docs/auth.md).

- :mod:`.store`: users, tokens, roles, grants, workspaces (SQL, migrated like the others)
- :mod:`.authenticator`: credentials (Basic, tokens, OIDC JWTs, service credentials) to identities
- :mod:`.assertion`: the short-lived identity assertions the gateway signs
- :mod:`.access`: permission decisions, cached briefly
- :mod:`.policy`: the rule of each RPC; :mod:`.interceptor` applies them
- :mod:`.management`: AuthService; :mod:`.settings`: the process's settings and runtime
"""

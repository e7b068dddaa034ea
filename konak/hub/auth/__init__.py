"""Users, tenants, roles, tokens, rate limits and the audit log of the hub's JSON API."""

"""The settings of the hub's security ([auth], [provisioning]) and its database connection;
the security core is ``konak.hub.security``, the HTTP API ``konak.hub.api``."""

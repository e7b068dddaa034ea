"""The hub's HTTP API: the guard middleware, the views, their request schemas, the routes and
the OpenAPI document. Views are thin: they call the security core and the hub's resources
and map their domain errors to HTTP answers."""

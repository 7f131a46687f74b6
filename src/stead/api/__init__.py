"""HTTP routes, one module per resource: parse, call a service, shape the response."""

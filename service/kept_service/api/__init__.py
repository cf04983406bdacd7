"""HTTP routes of the kept server, one module per resource."""

"""OTLP in: OpenTelemetry GenAI spans and log records as kept events (README, "OpenTelemetry").

`payload` decodes an OTLP/HTTP body (protobuf or JSON), `attributes` reads OTLP values,
`messages` turns the conventions' chat messages into kept's input and output, `spans`
and `logs` map records to events, pure functions all; the service's routes do the I/O.
"""

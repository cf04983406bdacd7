"""The Kafka ingest consumer: validate → batch → insert → commit offsets.

A chain of small steps in the style of getsentry/arroyo: `decode` (bytes → event or a
reason to dead-letter it), `batching` (by count, bytes and age), `deadletter` (the
dead-letter topic and the invalid-share limit), `pipeline` (the loop that inserts with
backpressure and commits only what is stored) and `service` (`kept consume`, and the
thread inside `kept serve`).
"""

"""Events in: the contract's validation, the HTTP intake's writer and sink, project keys,
feedback tokens, and the Kafka consumer (`consumer/`). Imports storage and the wire
contract only."""

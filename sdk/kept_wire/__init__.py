"""The wire contract that the SDK and the server share: standard library only, and it
imports nothing of kept's other packages (README, "Architecture")."""

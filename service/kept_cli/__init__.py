"""The `kept` command line: the top layer, which may import every other one (lazily, so
that the SDK-only install still runs `kept --help` and `kept demo`)."""

"""The wire contract that the SDK and the server share: the standard library, and msgspec
for the events' JSON where it is installed (:mod:`kept_wire.encoding`); it imports
nothing of kept's other packages (README, "Architecture")."""

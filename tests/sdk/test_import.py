"""Importing kept leaves the process as it was: no thread, no exit hook, no fork hook.

Each check runs in a fresh interpreter, since this one has imported kept long ago. The
standard library modules that kept imports register hooks of their own (logging, random),
so the child imports those first and then counts what importing kept itself adds.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Imports every module of the SDK and of the wire contract.
IMPORT_ALL = """
import importlib, pkgutil
import kept, kept_wire
for package in (kept, kept_wire):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
"""

CHECK = """
import atexit, os, sys, threading
for name in sys.argv[1:]:
    __import__(name)

fork_hooks = []
register_at_fork = os.register_at_fork
def spy(**hooks):
    fork_hooks.append(hooks)
    register_at_fork(**hooks)
os.register_at_fork = spy
exit_hooks = atexit._ncallbacks()

{import_all}
assert atexit._ncallbacks() == exit_hooks, "importing kept registered an exit hook"
assert fork_hooks == [], f"importing kept registered fork hooks: {{fork_hooks}}"
assert threading.active_count() == 1, threading.enumerate()

class Sink:
    def send(self, events):
        from kept.transports import Outcome, SendResult
        return SendResult(Outcome.SENT)
    def reset(self): pass
    def close(self): pass

first = kept.Client(transport=Sink())
assert atexit._ncallbacks() > exit_hooks and fork_hooks, "the first client registers them"
registered = (atexit._ncallbacks(), len(fork_hooks))
second = kept.Client(transport=Sink())
assert (atexit._ncallbacks(), len(fork_hooks)) == registered, "and later ones do not again"
"""


def python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_kept_registers_no_hook_and_starts_no_thread() -> None:
    # The modules outside kept that importing kept loads, imported first by the check.
    others = python(
        IMPORT_ALL
        + "import sys\n"
        + "print(' '.join(m for m in sys.modules if not m.startswith(('kept', '__main__'))))"
    ).split()
    python(textwrap.dedent(CHECK).format(import_all=IMPORT_ALL), *others)

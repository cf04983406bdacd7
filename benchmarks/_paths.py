"""Imported first by the benchmarks run as scripts: the repository on the path, and this
folder off it (benchmarks/kafka.py would otherwise hide the kafka-python package)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

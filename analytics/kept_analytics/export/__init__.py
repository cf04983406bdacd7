"""Fine-tuning export: corrected and well-rated generations as training sets
(`openai-chat`, `dpo`, `jsonl`), filtered, deduplicated, split and redacted."""

from kept_analytics.export.pipeline import Summary, run
from kept_analytics.export.redact import default_redact, load_redactor, no_redact
from kept_analytics.export.spec import ExportSpec, spec_from_params
from kept_analytics.export.writer import validation_path, write

__all__ = [
    "ExportSpec",
    "Summary",
    "default_redact",
    "load_redactor",
    "no_redact",
    "run",
    "spec_from_params",
    "validation_path",
    "write",
]

"""Analytics over the store: the outcomes job, reports and comparisons, and the
fine-tuning export (`export/`). Imports storage and the wire contract only."""

"""What a broker wrote to disk: the record batches of a topic's log segments.

A batch's header says how its records were compressed and which producer wrote them (a
producer id of -1: not idempotent). Reading the segments, rather than asking a client,
shows what the broker really stored; a codec that silently fell back, or a producer
that quietly lost its idempotence, shows here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kafka.record import MemoryRecords

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
"""Kafka's compression ids (the low bits of a batch's attributes)."""


@dataclass(frozen=True)
class Batch:
    partition: int
    base_offset: int
    records: int
    codec: str
    producer_id: int


def log_batches(log_dir: Path, topic: str) -> list[Batch]:
    """Every batch of `topic` in the broker's log directory, by partition and offset."""
    batches = []
    for partition_dir in sorted(log_dir.glob(f"{topic}-*")):
        name, _, partition = partition_dir.name.rpartition("-")
        if name != topic or not partition.isdigit():
            continue  # another topic whose name starts with this one's
        for segment in sorted(partition_dir.glob("*.log")):
            records = MemoryRecords(segment.read_bytes())
            while records.has_next():
                batch = records.next_batch()
                batches.append(
                    Batch(
                        partition=int(partition),
                        base_offset=batch.base_offset,
                        records=sum(1 for _ in batch),
                        codec=CODECS[batch.compression_type],
                        producer_id=batch.producer_id,
                    )
                )
    return batches

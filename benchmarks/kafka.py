"""The Kafka path on this machine: SDK send rate, and one `kept consume` into ClickHouse.

Starts its own broker (deploy/kafka-local/kafka.sh: Apache Kafka 4, KRaft) and its own
ClickHouse server (deploy/clickhouse-local) on free ports.

1. SDK: the Kafka transport's `send` (batches of --batch pre-encoded events, packed into
   array messages, acks=all, waiting for every acknowledgement), then the whole client
   (`log_generation`/feedback calls → worker → transport) until `flush` returns.
2. Consumer: the topic the transport filled, read once (a running broker's JIT and page
   cache are warm; a fresh one's are not), then one `kept consume` process per store, the
   embedded one and the ClickHouse server over HTTP; its /metrics are read until every
   event is stored. Sustained is measured from the first stored batch to the last
   (process start and store migrations excluded); the overall figure includes them. Peak
   memory is the process's high-water mark (VmHWM): with the whole backlog waiting, it
   shows whether memory stays flat. CPU time per event (the process's, all threads) is
   the figure to compare across runs on a shared machine: events/s follow the load.
3. Ceilings, measured in the same run (benchmarks/_ceilings.py): kafka-python alone
   reading the same topic (nothing decoded), and each store alone taking the same rows
   through the driver (made beforehand); each consumer figure is printed as a share of
   the lower of the two, which is what one process could at best reach.

    .venv/bin/python benchmarks/kafka.py [--events 300000] [--batch 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _paths  # noqa: F401 - first: puts the repository on the path, this folder off it

from benchmarks._ceilings import batches, cpu_seconds, fetch_rate, insert_rate, ratio
from kept import Client
from kept.transports import Outcome
from kept.transports.kafka import KafkaTransport
from kept_ingest.contract import Event
from kept_ingest.decode import DecodeLimits, decode_json_array
from kept_storage import chdb_dsn
from kept_wire.encoding import Record, encode_event, new_id
from tests.clickhouse import local_clickhouse
from tests.helpers import free_port
from tests.kafka.broker import Broker, consume_process, end_offsets, unique

INPUT = "Summarise the following support ticket. " * 5
OUTPUT = "The customer reports that the export fails on large files. " * 4


def records(generations: int) -> list[Record]:
    """A realistic mix: 1 generation : 2 feedback events, outputs of a few hundred bytes."""
    now = time.time()
    out: list[Record] = []
    for _ in range(generations):
        gid = new_id()
        fields: dict[str, object] = {
            "model": "gpt-4o-mini", "prompt_version": "summarize@2", "input": INPUT,
            "output": OUTPUT, "latency_ms": 812, "input_tokens": 412, "output_tokens": 96,
            "cost_usd": 0.00021, "metadata": {"app": "support-bot"},
        }  # fmt: skip
        out.append(("generation", gid, now, "u-17", None, fields))
        out.append(("action", gid, now, "u-17", None, {"name": "accept"}))
        out.append(("vote", gid, now, "u-17", None, {"value": 1}))
    return out


def transport_rate(broker: Broker, topic: str, events: list[bytes], batch: int) -> float:
    transport = KafkaTransport.from_endpoint(broker.endpoint(topic), timeout=30)
    try:
        assert transport.send(events[:batch]).outcome is Outcome.SENT  # connect, create topic
        started = time.perf_counter()
        for i in range(batch, len(events), batch):
            result = transport.send(events[i : i + batch])
            if result.outcome is not Outcome.SENT:
                raise SystemExit(f"send failed: {result}")
        return (len(events) - batch) / (time.perf_counter() - started)
    finally:
        transport.close()


def client_rate(broker: Broker, topic: str, generations: int, batch: int) -> float:
    client = Client(
        endpoint=broker.endpoint(topic),
        project="bench",
        batch_size=batch,
        max_queue_size=4 * generations,
        spool_dir=False,
    )
    started = time.perf_counter()
    for i in range(generations):
        gid = client.log_generation(
            model="gpt-4o-mini", prompt_version="summarize@2", input=INPUT, output=OUTPUT,
            latency_ms=812, input_tokens=412, output_tokens=96, cost_usd=0.00021,
            metadata={"app": "support-bot"}, user_id=f"u-{i % 100}",
        )  # fmt: skip
        client.accept(gid)
        client.vote(gid, 1)
    if not client.flush(timeout=600):
        raise SystemExit(f"the client did not flush: {client.stats()}")
    elapsed = time.perf_counter() - started
    client.close()
    return client.stats()["sent"] / elapsed


def consumer_rate(
    broker: Broker, topic: str, total: int, store: dict[str, str]
) -> tuple[float, float, float, float]:
    """(sustained events/s, overall events/s, peak RSS in MiB, CPU µs per event while
    sustained) of one `kept consume`. CPU time per event moves little with the load of
    the machine's other processes, unlike events/s."""
    group = unique("bench")
    started = time.perf_counter()
    with consume_process(broker, topic, group, **store) as consumer:
        pid = consumer.process.pid
        first: tuple[float, float, float] | None = None
        while (done := consumer.inserted()) < total:
            if consumer.process.poll() is not None:
                raise SystemExit("kept consume exited:\n" + consumer.log)
            if first is None and done > 0:
                first = (time.perf_counter(), done, cpu_seconds(pid))
            time.sleep(0.1)
        finished, cpu = time.perf_counter(), cpu_seconds(pid)
        peak = peak_rss_mib(pid)
        consumer.stop()
    assert first is not None
    sustained = (total - first[1]) / (finished - first[0])
    cpu_us = (cpu - first[2]) / (total - first[1]) * 1e6
    return sustained, total / (finished - started), peak, cpu_us


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(what: str, rate: float, note: str = "") -> None:
    print(f"{what + ':':<66} {rate:>8,.0f} events/s{'  ' + note if note else ''}", flush=True)


def decoded(encoded: list[bytes]) -> list[Event]:
    """The events as the consumer decodes them (for the insert ceiling's rows)."""
    limits = DecodeLimits(max_events=len(encoded))
    return decode_json_array(b"[" + b",".join(encoded) + b"]", limits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="events for the consumer")
    parser.add_argument("--batch", type=int, default=500, help="SDK batch size")
    args = parser.parse_args()
    generations = args.events // 3
    with tempfile.TemporaryDirectory(prefix="kept-bench-kafka-") as tmp:
        broker = Broker(Path(tmp) / "kafka", free_port(), free_port())
        broker.start()
        try:
            print(f"encoding {3 * generations} events ...", flush=True)
            encoded = [encode_event(r, "bench") for r in records(generations)]
            topic = unique("bench")
            rate = transport_rate(broker, topic, encoded, args.batch)
            report(f"SDK Kafka transport, send() of {args.batch}-event batches (acks=all)", rate)
            rate = client_rate(broker, unique("client"), 20_000, args.batch)
            report("SDK client, 60,000 events from the log calls to acknowledged", rate)
            messages = sum(end_offsets(broker, topic).values())
            per_message = len(encoded) / messages
            fetch_rate(broker.bootstrap, topic, messages)  # warms the broker's JIT and cache
            fetched = fetch_rate(broker.bootstrap, topic, messages) * per_message
            report(f"ceiling: kafka-python raw fetch ({per_message:.0f} events a message)", fetched)
            print(f"{'  the same in messages:':<66} {fetched / per_message:>8,.0f} messages/s")
            rows = batches(decoded(encoded))
            (Path(tmp) / "clickhouse").mkdir()
            with local_clickhouse(Path(tmp) / "clickhouse") as url:
                stores = {
                    "the embedded store": (
                        {"KEPT_DATA": str(Path(tmp) / "data")},
                        (chdb_dsn(Path(tmp) / "ceiling"), "kept"),
                    ),
                    "the ClickHouse server": (
                        {"KEPT_DSN": url, "KEPT_DATABASE": "bench"},
                        (url, "ceiling"),
                    ),
                }
                for name, (store, (dsn, database)) in stores.items():
                    inserted, insert_cpu = insert_rate(dsn, database, rows)
                    report(
                        f"ceiling: raw insert of the same rows into {name}",
                        inserted,
                        f"{insert_cpu:.1f} µs CPU per event in the inserting process",
                    )
                    ceiling = min(fetched, inserted)
                    print(f"consuming {len(encoded):,} events into {name} ...", flush=True)
                    sustained, overall, peak, cpu_us = consumer_rate(
                        broker, topic, len(encoded), store
                    )
                    report(
                        f"kept consume into {name}, sustained",
                        sustained,
                        f"{ratio(sustained, ceiling)} of the lower ceiling "
                        f"(fetch {ratio(sustained, fetched)}, insert {ratio(sustained, inserted)})",
                    )
                    report(f"kept consume into {name}, overall (start, migrations)", overall)
                    print(f"{'  peak memory (VmHWM):':<66} {peak:>8,.0f} MiB", flush=True)
                    print(
                        f"{'  CPU time per event, sustained (all threads):':<66} {cpu_us:>8.1f} µs"
                        f"  ({1e6 / cpu_us:,.0f} events per CPU-second)",
                        flush=True,
                    )
        finally:
            broker.shutdown()


if __name__ == "__main__":
    main()

"""A real ClickHouse server on this machine, from the chdb-core wheel kept already installs.

chdb-core's clickhouse-local can open ClickHouse's own HTTP and native listeners, so
clickhouse-connect talks HTTP to a real server process, as in production. It runs in the
foreground until killed; its data survives a restart.

    .venv/bin/python deploy/clickhouse-local/clickhouse.py --data .tools/clickhouse-data
    KEPT_DSN=http://default:@127.0.0.1:18123 kept serve     # in another terminal

Used by `make clickhouse-up` and by the tests' `clickhouse_url` fixture.

`--cluster NAME --shard HOST:TCP_PORT ...` (every shard's native port, in order, this
server's among them) makes the server one shard of cluster NAME in `<remote_servers>`,
with `{shard}` and `{replica}` macros: Distributed tables then work across the servers
(no Keeper and no interserver port here, so no ON CLUSTER and no replication).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# The keep-alive query holds the listeners open; the format must be TabSeparated (it
# becomes the server's default HTTP format, and clickhouse-connect fails on CSV).
_SERVE = (
    "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
    "SELECT sum(sleepEachRow(1)) FROM numbers(1000000000) SETTINGS "
    "function_sleep_max_microseconds_per_block=0, max_block_size=1, max_execution_time=0"
)


def config_xml(host: str, http_port: int, tcp_port: int, cluster: str = "") -> str:
    return (
        f"<clickhouse><http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port>"
        f"<listen_host>{host}</listen_host>{cluster}</clickhouse>\n"
    )


def cluster_xml(name: str, shards: list[str], host: str, tcp_port: int) -> str:
    """`<remote_servers>` with one single-replica shard per `host:port` of `shards`, and
    the macros of this server (`{shard}`: its position there, from 1)."""
    me = f"{host}:{tcp_port}"
    if me not in shards:
        raise SystemExit(f"--shard must list this server ({me}) among the cluster's shards")
    replicas = "".join(
        f"<shard><replica><host>{h}</host><port>{p}</port></replica></shard>"
        for h, p in (shard.rsplit(":", 1) for shard in shards)
    )
    macros = f"<shard>{shards.index(me) + 1:02d}</shard><replica>{host}-{tcp_port}</replica>"
    return f"<remote_servers><{name}>{replicas}</{name}></remote_servers><macros>{macros}</macros>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="directory of the server's data")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=18123)
    parser.add_argument("--tcp-port", type=int, default=19000)
    parser.add_argument("--cluster", help="make this server a shard of this cluster")
    parser.add_argument(
        "--shard", action="append", default=[], help="HOST:TCP_PORT of a shard (repeat, in order)"
    )
    args = parser.parse_args()
    data = Path(args.data).resolve()
    (data / "store").mkdir(parents=True, exist_ok=True)
    cluster = ""
    if args.cluster:
        cluster = cluster_xml(args.cluster, args.shard, args.host, args.tcp_port)
    # clickhouse-local reads config.xml from its working directory.
    (data / "config.xml").write_text(config_xml(args.host, args.http_port, args.tcp_port, cluster))
    os.chdir(data)
    from chdb import _chdb  # private API: its one-shot path runs clickhouse-local

    print(f"ClickHouse on http://{args.host}:{args.http_port} (data {data})", flush=True)
    _chdb.query(_SERVE, "TabSeparated", path=str(data / "store"))


if __name__ == "__main__":
    main()

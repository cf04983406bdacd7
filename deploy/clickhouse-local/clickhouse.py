"""A real ClickHouse server on this machine, from the chdb-core wheel kept already installs.

chdb-core's clickhouse-local can open ClickHouse's own HTTP and native listeners, so
clickhouse-connect talks HTTP to a real server process, as in production. It runs in the
foreground until killed; its data survives a restart.

    .venv/bin/python deploy/clickhouse-local/clickhouse.py --data .tools/clickhouse-data
    KEPT_DSN=http://default:@127.0.0.1:18123 kept serve     # in another terminal

Used by `make clickhouse-up` and by the tests' `clickhouse_url` fixture.
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


def config_xml(host: str, http_port: int, tcp_port: int) -> str:
    return (
        f"<clickhouse><http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port>"
        f"<listen_host>{host}</listen_host></clickhouse>\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="directory of the server's data")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=18123)
    parser.add_argument("--tcp-port", type=int, default=19000)
    args = parser.parse_args()
    data = Path(args.data).resolve()
    (data / "store").mkdir(parents=True, exist_ok=True)
    # clickhouse-local reads config.xml from its working directory.
    (data / "config.xml").write_text(config_xml(args.host, args.http_port, args.tcp_port))
    os.chdir(data)
    from chdb import _chdb  # private API: its one-shot path runs clickhouse-local

    print(f"ClickHouse on http://{args.host}:{args.http_port} (data {data})", flush=True)
    _chdb.query(_SERVE, "TabSeparated", path=str(data / "store"))


if __name__ == "__main__":
    main()

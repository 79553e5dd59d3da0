"""Fleet import benchmark: `watchline import fleet` of an N-row CSV on the embedded default (SQLite).

Prints JSON: rows, seconds for the first import, seconds for a re-import of the same file (updates),
and rows/s. Target (issue 2): 10,000 rows in under 10 s.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

PROVINCES = "京沪粤浙苏鲁川鄂湘豫"


def fleet_rows(n: int, seed: int = 0):
    """Synthetic but valid fleet rows: CN plates and mobile numbers, JT808/GT06 terminals."""
    for i in range(n):
        j = i + seed
        protocol = "jt808" if i % 2 == 0 else "gt06"
        terminal = f"0{13000000000 + j}" if protocol == "jt808" else f"{860000000000000 + j}"
        yield {
            "plate": f"{PROVINCES[j % 10]}{chr(65 + j // 10 % 26)}{j:05d}"[:8],
            "terminal_id": terminal,
            "protocol": protocol,
            "owner_name": f"Owner {j // 2:05d}",  # two vehicles per owner
            "owner_phone": f"139{j // 2:08d}",
            "tier": ("platinum", "gold", "normal", "normal")[j % 4],
            "pin": f"{(j * 7919) % 1000000:06d}",
            "backup_phone": f"137{j:08d}" if j % 3 == 0 else "",
            "kind": "rescue" if j % 50 == 0 else "customer",
            "model": "Model Y",
            "color": "white",
            "email": f"owner{j // 2}@example.com" if j % 5 == 0 else "",
            "skills": "tow,battery" if j % 50 == 0 else "",
        }


def write_csv(path: Path, n: int) -> None:
    rows = list(fleet_rows(n))
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def timed_import(path: Path, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "watchline", "import", "fleet", str(path)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_lookups(env: dict, tmp: Path, rows: list[dict], samples: int) -> dict:
    """Find sampled vehicles through the running API by plate, owner-name prefix and phone."""
    port = free_port()
    env = dict(env, WATCHLINE_API_LISTEN=f"tcp:{port}:interface=127.0.0.1", WATCHLINE_INGEST_JT808="",
               WATCHLINE_INGEST_GT06="", WATCHLINE_SIP_LISTEN="")
    token = subprocess.run([sys.executable, "-m", "watchline", "token", "issue", "--role", "agent"], env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([sys.executable, "-m", "watchline", "serve"], env=env, cwd=tmp,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        rng = random.Random(7)
        picked = rng.sample(rows, samples)
        found = {"plate": 0, "owner_name_prefix": 0, "phone": 0}
        latencies = []
        for row in picked:
            for kind, q in (("plate", row["plate"]), ("owner_name_prefix", row["owner_name"][:-1]),
                            ("phone", row["owner_phone"])):
                req = urllib.request.Request(f"{base}/api/v1/vehicles?limit=200&q={urllib.parse.quote(q)}",
                                             headers={"Authorization": f"Bearer {token}"})
                t0 = time.perf_counter()
                body = json.loads(urllib.request.urlopen(req, timeout=10).read())
                latencies.append(time.perf_counter() - t0)
                found[kind] += row["plate"] in [v["plate"] for v in body["vehicles"]]
    finally:
        server.terminate()
        server.wait(timeout=20)
    latencies.sort()
    return {"samples": samples, "found": found, "all_found": all(v == samples for v in found.values()),
            "search_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
            "search_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--lookups", type=int, default=200, help="vehicles to find through the API afterwards")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "fleet.csv"
        write_csv(path, args.rows)
        env = dict(os.environ, WATCHLINE_DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}")
        first = timed_import(path, env)
        again = timed_import(path, env)
        lookups = api_lookups(env, tmp, list(fleet_rows(args.rows)), min(args.lookups, args.rows))
    print(json.dumps({
        "bench": "fleet_import", "rows": args.rows, "first_import_s": round(first, 2),
        "reimport_s": round(again, 2), "rows_per_s": round(args.rows / first), "target_s": 10.0,
        "meets_target": first < 10.0, "api_lookups": lookups,
    }))


if __name__ == "__main__":
    main()

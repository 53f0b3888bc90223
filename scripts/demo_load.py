#!/usr/bin/env python3
"""The demo's sample application: a few clients that read and write the
`api` table through the proxies (each client through one of them, in turn)
until a stop file appears, then print what they did and how many of their
statements failed.

    demo_load.py --engine postgres --proxy 127.0.0.1:6432 --proxy 127.0.0.1:6442 \
        --db switchyard_demo --stop /tmp/stop [--clients 4]

The application changes nothing during the migration: it names `api` and
its columns `path` and `method` throughout.
"""

import argparse
import os
import random
import sys
import threading
import time


def connect(engine, host, port, db):
    if engine == "postgres":
        import psycopg

        return psycopg.connect(
            host=host, port=port, user="app", password="app", dbname=db,
            sslmode="disable", autocommit=True, connect_timeout=10,
        )
    import pymysql

    return pymysql.connect(
        host=host, port=port, user="app", password="app", database=db,
        autocommit=True, connect_timeout=10,
    )


def client(n, args, totals, lock):
    proxy = args.proxy[n % len(args.proxy)]
    host, port = proxy.rsplit(":", 1)
    ph = "%s"
    ops = errors = 0
    last_error = None
    rng = random.Random(n)
    conn = None
    while not os.path.exists(args.stop):
        try:
            if conn is None:
                conn = connect(args.engine, host, int(port), args.db)
            cur = conn.cursor()
            key = rng.randint(1, args.rows)
            op = rng.random()
            if op < 0.6:
                cur.execute(f"SELECT id, path, method, hits FROM api WHERE id = {ph}", (key,))
                cur.fetchall()
            elif op < 0.85:
                cur.execute(f"UPDATE api SET hits = hits + 1 WHERE id = {ph}", (key,))
            elif op < 0.95:
                cur.execute(
                    f"INSERT INTO api (path, method, hits) VALUES ({ph}, {ph}, 0)",
                    (f"/new/{n}/{ops}", rng.choice(["GET", "POST"])),
                )
            else:
                cur.execute(f"UPDATE api SET method = {ph} WHERE id = {ph}", (rng.choice(["GET", "PUT"]), key))
            ops += 1
        except Exception as e:  # counted and shown: the demo's promise is 0
            errors += 1
            last_error = f"{type(e).__name__}: {e}".strip()
            try:
                conn.close()
            except Exception:
                pass
            conn = None
            time.sleep(0.1)
        if args.pace:
            time.sleep(args.pace)
    with lock:
        totals["ops"] += ops
        totals["errors"] += errors
        if last_error:
            totals["last_error"] = last_error


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--engine", choices=["postgres", "mysql"], required=True)
    p.add_argument("--proxy", action="append", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--pace", type=float, default=0.002)
    args = p.parse_args()
    totals = {"ops": 0, "errors": 0}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=client, args=(n, args, totals, lock)) for n in range(args.clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"load: {totals['ops']} statements, {totals['errors']} errors")
    if totals.get("last_error"):
        print(f"load: last error: {totals['last_error']}")
    sys.exit(0 if totals["errors"] == 0 else 1)


if __name__ == "__main__":
    main()

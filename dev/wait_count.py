"""Waits until Milvus answers count(*) correctly, repeatedly — readiness after a restart.

/healthz and get_replicas() say "ready" while a restarted QueryNode's replica still answers wrong
without an error (count 0, growing rows only) for seconds. Tests that need a correct answer call this:
it polls a Strong count(*) every 100 ms and returns once N consecutive answers equal the expected count.

usage: python dev/wait_count.py COLLECTION EXPECTED [--consecutive 10] [--timeout 120]
Prints one JSON line: {"ready_after_s", "wrong_answers", "errors", "first_wrong", "last_wrong_at_s"}.
"""
import argparse
import json
import time

from pymilvus import Collection, connections


def wait_for_count(collection, expected, consecutive=10, timeout=120.0, interval=0.1):
    start = time.time()
    streak = wrong = errors = 0
    first_wrong = last_wrong_at = None
    while time.time() - start < timeout:
        try:
            got = collection.query("", output_fields=["count(*)"], consistency_level="Strong", timeout=5)[0]["count(*)"]
        except Exception:  # noqa: BLE001 - unavailable replicas raise; keep polling
            errors += 1
            streak = 0
            time.sleep(interval)
            continue
        if got == expected:
            streak += 1
            if streak >= consecutive:
                return {
                    "ready_after_s": round(time.time() - start, 2),
                    "wrong_answers": wrong,
                    "errors": errors,
                    "first_wrong": first_wrong,
                    "last_wrong_at_s": last_wrong_at,
                }
        else:
            streak = 0
            wrong += 1
            first_wrong = first_wrong if first_wrong is not None else got
            last_wrong_at = round(time.time() - start, 2)
        time.sleep(interval)
    raise TimeoutError(f"count(*) of {collection.name} not {expected} {consecutive} times in a row within {timeout}s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("collection")
    parser.add_argument("expected", type=int)
    parser.add_argument("--consecutive", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--uri", default="http://127.0.0.1:19530")
    args = parser.parse_args()
    connections.connect(uri=args.uri)
    print(json.dumps(wait_for_count(Collection(args.collection), args.expected, args.consecutive, args.timeout)))


if __name__ == "__main__":
    main()

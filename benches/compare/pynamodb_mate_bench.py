#!/usr/bin/env python3
"""Side-by-side peer benchmark: pynamodb_mate's "large attribute" pattern.

Written for **pynamodb_mate 6.0.1.1** (PyPI), tested with pynamodb 6.1.0,
boto3/botocore 1.44.5, Python 3.11.

What it measures
----------------
The same workload the vhs benchmarks run, done the way a Python user would do
it with pynamodb_mate: a pynamodb model whose large attributes live in S3 while
the DynamoDB item keeps only their S3 URIs
(``pynamodb_mate.patterns.large_attribute.api.LargeAttributeMixin``).

Each item has a string hash key ``id``, two large attributes (``large_a``,
``large_b``) of ``--size`` bytes each and one small number attribute
(``counter``). Four phases run in order over ids ``"0"`` .. ``"N-1"`` with
``--callers`` concurrent callers (a ThreadPoolExecutor); every op is timed on
its own with ``time.perf_counter``:

============  =================================================================
phase         pynamodb_mate call -> requests it sends (all sequential, one
              thread, in this order; read from pynamodb_mate 6.0.1.1 source)
============  =================================================================
``create``    ``Model.create_large_attribute_item(kvs={large_a, large_b},
              attributes={counter})``
              -> for each large attribute, one after the other:
              S3 HeadObject (is the content-addressed key already there?) +
              S3 PutObject (only if absent); then DynamoDB PutItem
              (unconditional ``Model.save()``).  = 2 HEAD + 2 PUT + 1 PutItem
``get``       pynamodb_mate has no read helper for large attributes (the item
              only stores ``s3://bucket/key`` URIs), so: ``Model.get(id)``
              (DynamoDB GetItem) + ``split_s3_uri`` (pynamodb_mate helper) +
              boto3 ``get_object(...)["Body"].read()`` for both URIs, one after
              the other.  = 1 GetItem + 2 GetObject
``update``    ``Model.update_large_attribute_item(kvs={large_a: new bytes},
              update_actions=[counter.set(...)])`` with its defaults
              ``clean_up_when_succeeded=True`` / ``clean_up_when_failed=True``
              -> S3 HeadObject + PutObject for the new content, DynamoDB
              GetItem (projection of the large attribute + key, to learn the
              old URI), DynamoDB UpdateItem (ReturnValues=ALL_NEW), then S3
              DeleteObjects of the replaced object (the default clean-up
              deletes the old S3 object).  = 5 requests
``delete``    ``Model.delete_large_attribute_item(attributes=[large_a,
              large_b], clean_up_when_succeeded=True)``
              -> DynamoDB GetItem (to learn the URIs), DynamoDB DeleteItem,
              one S3 DeleteObjects carrying both keys.  = 3 requests
============  =================================================================

The S3 key pynamodb_mate picks is content addressed:
``{prefix}/pk={id}/attr={attr}/md5={md5 of value}``, so it hashes every value
(MD5) before uploading. It does not verify content on read (no checksum of its
own; botocore's default CRC32 request/response checksums do apply). Its create
is an unconditional PutItem (``Model.save()`` with no condition): there is no
create-if-absent, an existing item is overwritten. Nothing is done
concurrently inside one op; all requests of an op go out one after another.

Not timed: a warm-up of max(4, callers) ops per phase on separate ids
(``warmup-K``) run with the same concurrency (so the HTTP connection pools are
filled before timing), payload construction, and result verification (every
``get`` result is compared byte for byte; after each phase the S3 object count
under this run's prefix is checked, which proves ``update`` removed the old
object and ``delete`` removed both). The per-op latencies exclude these; the
phase wall time (``seconds``) runs from the first submit to the last
completion, so it includes them, but they cost microseconds per op (one
--size memcpy per payload, one bytes comparison per value).

Interface (all options required)::

    python pynamodb_mate_bench.py --endpoint http://127.0.0.1:PORT \
        --table NAME --bucket NAME --items N --callers C --size BYTES

stdout: exactly one JSON object per phase, one per line, e.g.::

    {"op": "create", "items": N, "callers": C, "seconds": total_wall,
     "ops_per_s": N/total_wall, "p50_ms": ..., "p99_ms": ...}

Everything else goes to stderr. Any failed op, failed verification or setup
error exits non-zero with a message on stderr.
"""

from __future__ import annotations

import os

# Credentials / region for the emulator. Set before boto3/botocore/pynamodb are
# imported so every client sees them; only filled in when not already set.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# Never fall back to the EC2 instance metadata endpoint (we only talk to
# --endpoint; explicit credentials below make this moot, belt and braces).
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

import argparse
import json
import sys
import time
import traceback
import uuid
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import boto3
import botocore.config
import botocore.exceptions
import pynamodb_mate.api as pm
from pynamodb_mate import __version__ as PYNAMODB_MATE_VERSION
from pynamodb_mate.patterns.large_attribute.api import (
    LargeAttributeMixin,
    split_s3_uri,
)

REGION = "us-east-1"
WRITTEN_FOR = "6.0.1.1"

# Names of the two large attributes (their DynamoDB values are S3 URIs).
LARGE_A = "large_a"
LARGE_B = "large_b"

# Fill bytes: distinct per attribute and per version, so every stored value is
# distinct (the first 8 bytes carry the item index).
FILL_A = 0x61  # large_a as created
FILL_B = 0x62  # large_b as created
FILL_A2 = 0x63  # large_a after update


def log(msg: str) -> None:
    print(f"[pynamodb_mate_bench] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A failed op, failed verification or failed setup step."""


# --------------------------------------------------------------------------- #
# Model
# --------------------------------------------------------------------------- #
def make_model(
    table_name: str, endpoint: str, pool_size: int, key_id: str, secret: str
) -> type:
    """Build the pynamodb_mate model bound to --table / --endpoint.

    Built in a function because the table name comes from the command line and
    pynamodb reads ``Meta`` when it first creates its (cached) connection.
    """
    _table, _host, _pool = table_name, endpoint, pool_size

    class BenchItem(pm.Model, LargeAttributeMixin):
        class Meta:
            table_name = _table
            region = REGION
            host = _host  # pynamodb passes this as endpoint_url to botocore
            billing_mode = pm.constants.PAY_PER_REQUEST_BILLING_MODE
            # pynamodb's botocore client defaults to max_pool_connections=10;
            # with more callers than that, requests would queue for a pooled
            # connection and throttle the Python side artificially, so raise
            # it to >= --callers.
            max_pool_connections = _pool
            aws_access_key_id = key_id
            aws_secret_access_key = secret

        id = pm.UnicodeAttribute(hash_key=True)
        counter = pm.NumberAttribute(null=True)
        # Large attributes: the LargeAttributeMixin requires UnicodeAttribute;
        # the item stores the S3 URI, the bytes live in S3.
        large_a = pm.UnicodeAttribute(null=True)
        large_b = pm.UnicodeAttribute(null=True)

    return BenchItem


# --------------------------------------------------------------------------- #
# Payloads
# --------------------------------------------------------------------------- #
class Payloads:
    """Cheap distinct payloads: 8-byte big-endian (signed) item index + fill byte.

    The fill tails are built once; per op only ``header + tail`` is
    concatenated (a single memcpy of --size bytes), outside the timed region.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._tails = {f: bytes([f]) * (size - 8) for f in (FILL_A, FILL_B, FILL_A2)}

    def make(self, index: int, fill: int) -> bytes:
        return index.to_bytes(8, "big", signed=True) + self._tails[fill]


# --------------------------------------------------------------------------- #
# Phase runner
# --------------------------------------------------------------------------- #
@dataclass
class Op:
    """One benchmark operation.

    prepare(i) -> args   (not timed: builds payloads)
    run(i, args) -> res  (timed with perf_counter)
    check(i, res)        (not timed: verifies the result; raise on mismatch)
    """

    name: str
    run: Callable[[int, Any], Any]
    prepare: Callable[[int], Any] = lambda i: None
    check: Optional[Callable[[int, Any], None]] = None


def run_phase(op: Op, indices: list[int], callers: int) -> tuple[float, list[float]]:
    """Run ``op`` for every index with ``callers`` threads.

    Returns (wall seconds, per-op latencies in seconds). Raises BenchError on
    the first op that raised (remaining queued ops are cancelled).
    """

    def one(i: int) -> float:
        args = op.prepare(i)
        t0 = time.perf_counter()
        try:
            res = op.run(i, args)
        except Exception as e:
            raise BenchError(f"{op.name} of item {i!r} raised {type(e).__name__}: {e}") from e
        dt = time.perf_counter() - t0
        if op.check is not None:
            op.check(i, res)
        return dt

    with ThreadPoolExecutor(max_workers=callers, thread_name_prefix=op.name) as ex:
        t_start = time.perf_counter()
        futures = [ex.submit(one, i) for i in indices]
        done, not_done = wait(futures, return_when=FIRST_EXCEPTION)
        for f in futures:
            if f.done() and f.exception() is not None:
                for g in not_done:
                    g.cancel()
                exc = f.exception()
                log("".join(traceback.format_exception(exc)).rstrip())
                raise BenchError(f"phase {op.name!r} failed: {exc}") from exc
        t_wall = time.perf_counter() - t_start
    return t_wall, [f.result() for f in futures]


def percentile(sorted_lat: list[float], p: float) -> float:
    return sorted_lat[round((len(sorted_lat) - 1) * p)]


# --------------------------------------------------------------------------- #
# Setup helpers
# --------------------------------------------------------------------------- #
def ensure_bucket(s3, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        log(f"bucket {bucket!r} exists")
    except botocore.exceptions.ClientError as e:
        code = str(e.response.get("Error", {}).get("Code"))
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        # us-east-1: no CreateBucketConfiguration.
        s3.create_bucket(Bucket=bucket)
        log(f"created bucket {bucket!r}")


def ensure_table(model: type) -> None:
    if model.exists():
        log(f"table {model.Meta.table_name!r} exists")
        return
    # create_table sends CreateTable (hash key `id` S, PAY_PER_REQUEST from
    # Meta.billing_mode) and polls DescribeTable until ACTIVE.
    model.create_table(wait=True)
    log(f"created table {model.Meta.table_name!r}")


def count_objects(s3, bucket: str, prefix: str) -> int:
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        n += len(page.get("Contents", []))
    return n


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True, help="emulator URL for both S3 and DynamoDB")
    p.add_argument("--table", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--items", type=int, required=True)
    p.add_argument("--callers", type=int, required=True)
    p.add_argument("--size", type=int, required=True, help="bytes per large attribute")
    a = p.parse_args(argv)
    if a.items < 1:
        p.error("--items must be >= 1")
    if a.callers < 1:
        p.error("--callers must be >= 1")
    if a.size < 9:
        p.error("--size must be >= 9 (8-byte item index + at least one fill byte)")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if PYNAMODB_MATE_VERSION != WRITTEN_FOR:
        log(f"warning: written for pynamodb_mate {WRITTEN_FOR}, running {PYNAMODB_MATE_VERSION}")

    key_id = os.environ["AWS_ACCESS_KEY_ID"]
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    # Connection pools >= callers on both clients (botocore default is 10).
    pool = max(10, args.callers)

    # One S3 client, created up front and shared by all threads (botocore
    # clients are thread-safe; sessions are not).
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=args.endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            max_pool_connections=pool,
        ),
    )
    Item = make_model(args.table, args.endpoint, pool, key_id, secret)

    ensure_bucket(s3, args.bucket)
    # First DynamoDB call happens here, on the main thread: it creates
    # pynamodb's cached TableConnection and its botocore client, which every
    # worker thread then shares.
    ensure_table(Item)

    # Per-run S3 prefix, so object-count checks are exact even if the bucket
    # holds leftovers from other runs.
    prefix = f"pynamodb_mate_bench/{uuid.uuid4().hex[:12]}"
    log(
        f"pynamodb_mate {PYNAMODB_MATE_VERSION}; endpoint={args.endpoint} table={args.table} "
        f"bucket={args.bucket} prefix={prefix} items={args.items} callers={args.callers} "
        f"size={args.size} pool={pool}"
    )

    payloads = Payloads(args.size)

    def item_id(i: int) -> str:
        return str(i) if i >= 0 else f"warmup-{-i - 1}"

    def utc_now() -> datetime:
        return datetime.now(timezone.utc)

    # ---- create ---------------------------------------------------------- #
    def create_prepare(i: int) -> dict[str, bytes]:
        return {LARGE_A: payloads.make(i, FILL_A), LARGE_B: payloads.make(i, FILL_B)}

    def create_run(i: int, kvs: dict[str, bytes]) -> Any:
        # put_s3 (HEAD + PUT per attribute, sequential) then Model.save()
        # (PutItem). On a DynamoDB failure it deletes the objects it created
        # (clean_up_when_failed=True, the default).
        return Item.create_large_attribute_item(
            s3_client=s3,
            pk=item_id(i),
            sk=None,
            kvs=kvs,
            bucket=args.bucket,
            prefix=prefix,
            update_at=utc_now(),  # stored in the S3 objects' metadata
            attributes={"counter": i},
            clean_up_when_failed=True,
        )

    def create_check(i: int, model: Any) -> None:
        if not (model.large_a and model.large_b):
            raise BenchError(f"create of {item_id(i)!r} returned no S3 URIs")

    # ---- get ------------------------------------------------------------- #
    def get_run(i: int, _: Any) -> tuple[Any, bytes, bytes]:
        # pynamodb_mate offers no "load large attributes" helper: read the item
        # (GetItem), then download each URI's bytes (sequential GetObjects).
        model = Item.get(item_id(i))
        values = []
        for uri in (model.large_a, model.large_b):
            bucket, key = split_s3_uri(uri)
            values.append(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return model, values[0], values[1]

    def get_check(expect_a_fill: int) -> Callable[[int, Any], None]:
        def check(i: int, res: tuple[Any, bytes, bytes]) -> None:
            model, a, b = res
            if a != payloads.make(i, expect_a_fill) or b != payloads.make(i, FILL_B):
                raise BenchError(
                    f"get of {item_id(i)!r}: wrong bytes (len a={len(a)}, b={len(b)})"
                )
            expect_counter = i + 1 if expect_a_fill == FILL_A2 else i
            if model.counter != expect_counter:
                raise BenchError(f"get of {item_id(i)!r}: counter {model.counter} != {expect_counter}")

        return check

    # ---- update ---------------------------------------------------------- #
    def update_prepare(i: int) -> dict[str, bytes]:
        return {LARGE_A: payloads.make(i, FILL_A2)}

    def update_run(i: int, kvs: dict[str, bytes]) -> Any:
        # Replaces large_a (new content => new content-addressed key) and sets
        # counter, in one UpdateItem. Old-object cleanup: with the default
        # clean_up_when_succeeded=True it first reads the old URI (GetItem,
        # eventually consistent by default) and, after the UpdateItem
        # succeeded, deletes the old large_a object (DeleteObjects).
        return Item.update_large_attribute_item(
            s3_client=s3,
            pk=item_id(i),
            sk=None,
            kvs=kvs,
            bucket=args.bucket,
            prefix=prefix,
            update_at=utc_now(),
            update_actions=[Item.counter.set(i + 1)],
            clean_up_when_succeeded=True,
            clean_up_when_failed=True,
        )

    def update_check(i: int, model: Any) -> None:
        if model.counter != i + 1 or not model.large_a or not model.large_b:
            raise BenchError(f"update of {item_id(i)!r} returned unexpected item {model.attribute_values}")

    # ---- delete ---------------------------------------------------------- #
    def delete_run(i: int, _: Any) -> None:
        # GetItem (to learn the URIs) + DeleteItem + DeleteObjects (both keys).
        Item.delete_large_attribute_item(
            s3_client=s3,
            pk=item_id(i),
            sk=None,
            attributes=[LARGE_A, LARGE_B],
            clean_up_when_succeeded=True,
        )

    ops = [
        Op("create", create_run, create_prepare, create_check),
        Op("get", get_run, check=get_check(FILL_A)),
        Op("update", update_run, update_prepare, update_check),
        Op("delete", delete_run),
    ]
    # S3 objects expected under the prefix after each phase, per item.
    objects_after = {"create": 2, "get": 2, "update": 2, "delete": 0}

    # ---- warm-up (not reported) ----------------------------------------- #
    # Same four ops on ids warmup-0.., with the same concurrency so both
    # connection pools hold `callers` open connections before timing.
    warm = [-(k + 1) for k in range(max(4, args.callers))]
    t0 = time.perf_counter()
    for op in ops:
        run_phase(op, warm, args.callers)
    # Extra check (untimed): updated values read back correctly. The warm-up
    # items are deleted by now, so check one recreated sample.
    sample = warm[0]
    run_phase(ops[0], [sample], 1)
    ops[2].check(sample, ops[2].run(sample, ops[2].prepare(sample)))
    get_check(FILL_A2)(sample, get_run(sample, None))
    ops[3].run(sample, None)
    leftover = count_objects(s3, args.bucket, prefix)
    if leftover:
        raise BenchError(f"warm-up left {leftover} S3 objects under {prefix!r}")
    log(f"warm-up done in {time.perf_counter() - t0:.2f}s ({len(warm)} items per op)")

    # ---- timed phases ---------------------------------------------------- #
    indices = list(range(args.items))
    t_all = time.perf_counter()
    for op in ops:
        wall, lat = run_phase(op, indices, args.callers)
        lat.sort()
        line = {
            "op": op.name,
            "items": args.items,
            "callers": args.callers,
            "seconds": wall,
            "ops_per_s": args.items / wall,
            "p50_ms": percentile(lat, 0.50) * 1e3,
            "p99_ms": percentile(lat, 0.99) * 1e3,
        }
        print(json.dumps(line), flush=True)
        # Untimed: S3 state matches what the API promises (update removed the
        # replaced object, delete removed both).
        n = count_objects(s3, args.bucket, prefix)
        want = objects_after[op.name] * args.items
        if n != want:
            raise BenchError(f"after {op.name}: {n} S3 objects under {prefix!r}, expected {want}")
        log(
            f"{op.name}: {wall:.3f}s, {line['ops_per_s']:.1f} ops/s, "
            f"p50 {line['p50_ms']:.2f} ms, p99 {line['p99_ms']:.2f} ms; {n} S3 objects"
        )
    log(f"timed phases took {time.perf_counter() - t_all:.2f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - report anything, exit non-zero
        if not isinstance(e, BenchError):
            log("".join(traceback.format_exception(e)).rstrip())
        log(f"FAILED: {type(e).__name__}: {e}")
        sys.exit(1)

#!/usr/bin/env python3
"""Writes a table the way a pynamodb_mate 6.0.1.1 user does, for `vhs-cli/tests/cli.rs`.

A pynamodb model with `LargeAttributeMixin`: hash key `id`, a small `title`, and two large
attributes (`body`, `thumb`) whose bytes go to S3 under `{prefix}/pk={id}/attr={attr}/md5=...`
while the item keeps `s3://` URIs. Creates the table (pay per request) and the bucket.

    python pynamodb_mate_table.py --endpoint URL --table NAME --bucket NAME --prefix P

Prints one JSON object: {"items": [{"id", "attr", "md5", "size", "uri"}, ...]}.
"""
import os

os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

import argparse
import hashlib
import json
from datetime import datetime, timezone

import boto3
import pynamodb_mate.api as pm
from pynamodb_mate.patterns.large_attribute.api import LargeAttributeMixin


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", required=True)
    a = p.parse_args()
    _table, _host = a.table, a.endpoint

    class Doc(pm.Model, LargeAttributeMixin):
        class Meta:
            table_name = _table
            region = "us-east-1"
            host = _host
            billing_mode = pm.constants.PAY_PER_REQUEST_BILLING_MODE

        id = pm.UnicodeAttribute(hash_key=True)
        title = pm.UnicodeAttribute(null=True)
        body = pm.UnicodeAttribute(null=True)
        thumb = pm.UnicodeAttribute(null=True)

    s3 = boto3.client("s3", endpoint_url=a.endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=a.bucket)
    Doc.create_table(wait=True)
    out = []
    for i in range(3):
        kvs = {
            "body": (f"pynamodb_mate body {i} " * (1000 * (i + 1))).encode(),
            "thumb": bytes([i]) * (100 + i),
        }
        Doc.create_large_attribute_item(
            s3_client=s3,
            pk=f"doc-{i}",
            sk=None,
            kvs=kvs,
            bucket=a.bucket,
            prefix=a.prefix,
            update_at=datetime.now(timezone.utc),
            attributes={"title": f"document {i}"},
        )
        item = Doc.get(f"doc-{i}")
        for attr, value in kvs.items():
            out.append(
                {
                    "id": f"doc-{i}",
                    "attr": attr,
                    "md5": hashlib.md5(value).hexdigest(),
                    "size": len(value),
                    "uri": getattr(item, attr),
                }
            )
    print(json.dumps({"items": out}))


if __name__ == "__main__":
    main()

"""The product-catalog pipeline in Python, against a running Ferry server.

    FERRY_ENDPOINT=127.0.0.1:50051 \\
    FERRY_OWNER_TOKEN=... FERRY_TEAM_A_TOKEN=... FERRY_TEAM_B_TOKEN=... \\
    python clients/python/examples/catalog_pipeline.py

The catalog team registers the contract, publishes two days and grants each team its view;
team A and team B read their views; re-publishing a day changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from ferry_client import Client, PermissionDenied, Progress

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "product_catalog"
RAW = "catalog.product_catalog"
TEAM_A_VIEW = "catalog.with_image"
TEAM_B_VIEW = "catalog.samsung_after_2000_without_image"
DAYS = {"2021-04-03": "product_catalog_20210403.csv", "2021-04-04": "product_catalog_20210404.csv"}


def show_progress(progress: Progress) -> None:
    print(f"  {progress.stage}: {progress.bytes_read}/{progress.total_bytes} bytes, {progress.rows_validated} rows")


def run(endpoint: str, owner_token: str, team_a_token: str, team_b_token: str) -> dict[str, int]:
    """Runs the pipeline and returns how many rows each reader saw on 2021-04-04."""
    with Client(endpoint, token=owner_token) as catalog:
        registered = catalog.register_dataset(EXAMPLES / "contract.yaml")
        print(f"registered {registered.dataset.contract.name} v{registered.dataset.contract_version}")
        for day, file in DAYS.items():
            source = (EXAMPLES / "data" / file).as_uri()
            result = catalog.publish_partition(RAW, day, source, on_progress=show_progress)
            print(f"published {day}: {result.publication.rows_accepted} rows")
        again = catalog.publish_partition(RAW, "2021-04-04", (EXAMPLES / "data" / DAYS["2021-04-04"]).as_uri())
        print(f"re-published 2021-04-04: unchanged={again.unchanged}")
        catalog.grant_access(TEAM_A_VIEW, "team:a", purpose="merchandising")
        catalog.grant_access(TEAM_B_VIEW, "team:b", purpose="assortment review")
        seen = {"raw": len(catalog.read_rows(RAW, from_date="2021-04-04", to_date="2021-04-04"))}
    for team, token, view in [("team:a", team_a_token, TEAM_A_VIEW), ("team:b", team_b_token, TEAM_B_VIEW)]:
        with Client(endpoint, token=token) as reader:
            rows = reader.read_rows(view, from_date="2021-04-04", to_date="2021-04-04")
            seen[team] = len(rows)
            print(f"{team} sees {len(rows)} rows in {view}")
            try:
                reader.read_rows(RAW, limit=1)
            except PermissionDenied as denied:
                print(f"{team} reading the raw table: denied ({denied.message})")
    return seen


if __name__ == "__main__":
    run(
        os.environ.get("FERRY_ENDPOINT", "127.0.0.1:50051"),
        os.environ["FERRY_OWNER_TOKEN"],
        os.environ["FERRY_TEAM_A_TOKEN"],
        os.environ["FERRY_TEAM_B_TOKEN"],
    )

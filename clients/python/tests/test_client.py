"""The Python client against a real ferry-server: the pipeline and each error path."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import time
from pathlib import Path

import pytest

import ferry_client
from ferry_client import Client

from .conftest import EXAMPLES, Server

DAY_2 = EXAMPLES / "data" / "product_catalog_20210404.csv"


def _load_example() -> object:
    spec = importlib.util.spec_from_file_location(
        "catalog_pipeline", Path(__file__).resolve().parents[1] / "examples" / "catalog_pipeline.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected_counts() -> dict[str, int]:
    rows = list(csv.DictReader(DAY_2.open(encoding="utf-8")))
    with_image = [r for r in rows if r["image"]]
    samsung = [r for r in rows if r["brand"] == "Samsung" and int(r["year_release"]) > 2000 and not r["image"]]
    return {"raw": len(rows), "team:a": len(with_image), "team:b": len(samsung)}


def test_catalog_pipeline_example_runs_end_to_end(server: Server) -> None:
    example = _load_example()
    seen = example.run(  # type: ignore[attr-defined]
        server.endpoint, server.tokens["team:catalog"], server.tokens["team:a"], server.tokens["team:b"]
    )
    assert seen == _expected_counts()


def test_reads_return_typed_rows_and_progress_is_reported(server: Server) -> None:
    with Client(server.endpoint, token=server.tokens["team:catalog"]) as ferry:
        ferry.register_dataset(EXAMPLES / "contract.yaml")
        progress: list[ferry_client.Progress] = []
        result = ferry.publish_partition(
            "catalog.product_catalog", "2021-04-04", DAY_2.as_uri(), on_progress=progress.append
        )
        assert result.publication.rows_accepted == _expected_counts()["raw"]
        assert not result.unchanged
        assert all(p.total_bytes == DAY_2.stat().st_size for p in progress)
        rows = ferry.read_rows("catalog.product_catalog", columns=["brand", "year_release", "partition_date"], limit=3)
        assert rows.columns == ["brand", "year_release", "partition_date"]
        first = next(iter(rows))
        assert isinstance(first["year_release"], int)
        assert str(first["partition_date"]) == "2021-04-04"
        assert ferry.server_info().version == ferry_client.__version__


def test_errors_map_to_exceptions(server: Server, tmp_path: Path) -> None:
    with Client(server.endpoint) as anonymous, pytest.raises(ferry_client.Unauthenticated) as missing:
        anonymous.list_datasets()
    assert missing.value.reason == "UNAUTHENTICATED"
    with Client(server.endpoint, token="fry_forged") as forged, pytest.raises(ferry_client.Unauthenticated):
        forged.list_datasets()
    owner = Client(server.endpoint, token=server.tokens["team:catalog"])
    with pytest.raises(ferry_client.InvalidContract) as invalid:
        owner.register_dataset({"name": "catalog.broken", "owner": "team:catalog", "columns": []})
    assert invalid.value.reason == "CONTRACT_INVALID"
    owner.register_dataset(EXAMPLES / "contract.yaml")
    with pytest.raises(ferry_client.NotFound) as not_found:
        owner.get_dataset("catalog.nothing_here")
    assert not_found.value.reason == "DATASET_NOT_FOUND"
    assert not_found.value.metadata == {"dataset": "catalog.nothing_here"}
    with pytest.raises(ferry_client.InvalidArgument) as bad_date:
        owner.publish_partition("catalog.product_catalog", "2021-13-45", DAY_2.as_uri())
    assert bad_date.value.reason == "INVALID_FIELD"
    assert list(bad_date.value.field_violations) == ["partition_date"]

    # A wrong type in one row: the publish is refused with the row's line and column.
    text = DAY_2.read_text(encoding="utf-8").splitlines()
    header = next(csv.reader(io.StringIO(text[0])))
    bad = tmp_path / "bad.csv"
    row = next(csv.reader(io.StringIO(text[1])))
    row[header.index("year_release")] = "nineteen ninety"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, row])
    bad.write_text(out.getvalue(), encoding="utf-8")
    with pytest.raises(ferry_client.PublishRejected) as rejected:
        owner.publish_partition("catalog.product_catalog", "2021-04-04", bad.as_uri())
    assert rejected.value.row_errors[0].line == 2
    assert rejected.value.row_errors[0].column == "year_release"
    assert rejected.value.publication_id
    assert rejected.value.reason == "PUBLICATION_REJECTED"
    assert rejected.value.metadata["publication_id"] == rejected.value.publication_id
    assert rejected.value.metadata["line"] == "2"

    with Client(server.endpoint, token=server.tokens["team:a"]) as team_a:
        # A dataset team A may not see answers exactly as a missing one.
        with pytest.raises(ferry_client.NotFound) as hidden:
            team_a.read_rows("catalog.product_catalog")
        assert hidden.value.reason == "DATASET_OR_VIEW_NOT_FOUND"
        with pytest.raises(ferry_client.NotFound) as absent:
            team_a.read_rows("catalog.no_such_table")
        assert (absent.value.reason, absent.value.message) == (
            hidden.value.reason,
            hidden.value.message.replace("product_catalog", "no_such_table"),
        )
        grant = owner.grant_access("catalog.with_image", "team:a", purpose="merchandising")
        assert [g.id for g in owner.list_grants("catalog.with_image")] == [grant.id]
        assert team_a.read_rows("catalog.with_image").columns
        # Seeing the dataset is not reading its raw table.
        with pytest.raises(ferry_client.PermissionDenied) as denied:
            team_a.read_rows("catalog.product_catalog")
        assert denied.value.reason == "POLICY_DENIED"
        owner.revoke_access(grant.id)
        with pytest.raises(ferry_client.NotFound):
            team_a.read_rows("catalog.with_image")
    owner.close()


def test_long_publishes_report_progress(server: Server, tmp_path: Path) -> None:
    # Progress is reported every 500 ms, so the file must take longer than that: ~500 MB of
    # valid rows (the server validates roughly 330 MB/s on the CI machine).
    lines = DAY_2.read_text(encoding="utf-8").splitlines(keepends=True)
    body = "".join(lines[1:])
    big = tmp_path / "big.csv"
    with big.open("w", encoding="utf-8") as out:
        out.write(lines[0])
        for _ in range(500_000_000 // len(body)):
            out.write(body)
    progress: list[ferry_client.Progress] = []
    with Client(server.endpoint, token=server.tokens["team:catalog"]) as ferry:
        ferry.register_dataset(EXAMPLES / "contract.yaml")
        result = ferry.publish_partition(
            "catalog.product_catalog", "2021-04-04", big.as_uri(), on_progress=progress.append
        )
    assert progress, "no progress reported"
    assert all(p.total_bytes == big.stat().st_size for p in progress)
    assert [p.bytes_read for p in progress] == sorted(p.bytes_read for p in progress)
    assert result.publication.rows_accepted > progress[0].rows_validated


def test_a_feed_publishes_todays_file_and_is_listed(server: Server, tmp_path: Path) -> None:
    today = dt.datetime.now(dt.timezone.utc).date()
    (tmp_path / f"drop_{today:%Y%m%d}.csv").write_bytes(DAY_2.read_bytes())
    contract = (EXAMPLES / "contract.yaml").read_text(encoding="utf-8")
    template = f"file://{tmp_path.resolve()}/drop_{{date:%Y%m%d}}.csv"
    contract += f'\nfeed:\n  source_template: "{template}"\n  check_every: 1m\n  lookback_days: 0\n'
    owner = Client(server.endpoint, token=server.tokens["team:catalog"])
    owner.register_dataset(contract)
    deadline = time.monotonic() + 60
    while True:
        feeds = owner.list_feeds("catalog.")
        assert [f.dataset for f in feeds] == ["catalog.product_catalog"]
        assert feeds[0].feed.source_template == template
        attempts = feeds[0].recent_attempts
        if attempts:
            break
        assert time.monotonic() < deadline, "the feed did not publish within a minute"
        time.sleep(0.2)
    assert attempts[0].outcome == "published", attempts
    assert attempts[0].partition_date == today.isoformat()
    rows = owner.read_rows("catalog.product_catalog", from_date=today, to_date=today)
    assert len(rows) == _expected_counts()["raw"]

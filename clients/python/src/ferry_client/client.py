"""`Client`: Ferry's API for Python services and notebooks, over the generated gRPC stubs."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ferry_client._proto.ferry.v1 import ferry_pb2 as pb
from ferry_client._proto.ferry.v1.ferry_pb2_grpc import FerryServiceStub
from ferry_client.errors import FerryError, PublishRejected, RowError, from_rpc_error

# Calls that change nothing may be retried by gRPC itself when the server is briefly
# unavailable. Publishing, registering and granting are not retried automatically.
_SAFE_TO_RETRY = [
    "GetDataset",
    "ListDatasets",
    "GetPublication",
    "ListPublications",
    "ListGrants",
    "ReadRows",
    "GetServerInfo",
]
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "ferry.v1.FerryService", "method": m} for m in _SAFE_TO_RETRY],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)
_MAX_MESSAGE = 64 << 20

DateLike = str | dt.date


@dataclass(frozen=True)
class Progress:
    """A publish under way: the stage, bytes read of the total (0 if unknown), rows validated."""

    stage: str
    bytes_read: int
    total_bytes: int
    rows_validated: int


@dataclass(frozen=True)
class PublishResult:
    publication: pb.Publication
    #: True when identical content was already live and nothing changed.
    unchanged: bool


@dataclass
class Rows:
    """Rows read from a dataset or view, with the columns masked for this caller."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    masked: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (dict(zip(self.columns, row, strict=True)) for row in self.rows)

    def to_pandas(self) -> Any:
        """A pandas DataFrame (needs `pip install ferry-client[pandas]`)."""
        import pandas  # noqa: PLC0415 - optional dependency

        return pandas.DataFrame.from_records(self.rows, columns=self.columns)

    def to_arrow(self) -> Any:
        """A pyarrow Table (needs `pip install ferry-client[arrow]`)."""
        import pyarrow  # noqa: PLC0415 - optional dependency

        return pyarrow.Table.from_pylist(list(self))


def _date(value: DateLike | None) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, dt.date) else value


def _timestamp(value: dt.date | dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _value(value: pb.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "date_value":
        return dt.date.fromisoformat(value.date_value)
    if kind == "timestamp_value":
        # RFC 3339 in UTC, "Z" suffix: an aware datetime.
        return dt.datetime.fromisoformat(value.timestamp_value.replace("Z", "+00:00"))
    if kind == "datetime_value":
        return dt.datetime.fromisoformat(value.datetime_value)
    if kind == "numeric_value":
        # Exact: a Decimal, never a float.
        return decimal.Decimal(value.numeric_value)
    return getattr(value, kind)


class Client:
    """A connection to a Ferry server.

    >>> with Client("localhost:50051", token=os.environ["FERRY_TOKEN"]) as ferry:
    ...     ferry.publish_partition("catalog.product_catalog", "2021-04-03", "s3://b/f.csv")

    `endpoint` is `host:port`, or a URL: `https://` uses TLS with the system's roots (or
    `root_certificates`), `http://` is plaintext.
    """

    def __init__(
        self,
        endpoint: str,
        token: str | None = None,
        *,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_key: bytes | None = None,
    ) -> None:
        target = endpoint.removeprefix("https://").removeprefix("http://").rstrip("/")
        secure = endpoint.startswith("https://") if tls is None else tls
        options = [
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ]
        if secure:
            credentials = grpc.ssl_channel_credentials(root_certificates, client_key, client_certificate)
            self._channel = grpc.secure_channel(target, credentials, options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._metadata: tuple[tuple[str, str | bytes], ...] = (
            (("authorization", f"Bearer {token.strip()}"),) if token else ()
        )
        self._stub = FerryServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # Datasets -----------------------------------------------------------------------------

    def register_dataset(self, contract: str | Path | Mapping[str, Any]) -> pb.RegisterDatasetResponse:
        """Registers a contract from a YAML file path, YAML text, or a dict (sent as JSON,
        which is YAML)."""
        if isinstance(contract, Mapping):
            text = json.dumps(contract)
        elif isinstance(contract, Path) or (isinstance(contract, str) and "\n" not in contract and Path(contract).is_file()):
            text = Path(contract).read_text(encoding="utf-8")
        else:
            text = contract
        response: pb.RegisterDatasetResponse = self._call(
            self._stub.RegisterDataset, pb.RegisterDatasetRequest(contract_yaml=text)
        )
        return response

    def get_dataset(self, name: str) -> pb.Dataset:
        dataset: pb.Dataset = self._call(self._stub.GetDataset, pb.GetDatasetRequest(name=name))
        return dataset

    def list_datasets(self, prefix: str = "") -> list[pb.Dataset]:
        response: pb.ListDatasetsResponse = self._call(
            self._stub.ListDatasets, pb.ListDatasetsRequest(name_prefix=prefix)
        )
        return list(response.datasets)

    # Publishing ---------------------------------------------------------------------------

    def publish_partition(
        self,
        dataset: str,
        date: DateLike,
        source: str,
        *,
        expected_sha256: str = "",
        on_progress: Callable[[Progress], None] | None = None,
    ) -> PublishResult:
        """Replaces one day of `dataset` with the rows of `source` (s3://, gs://, https://,
        file://). Raises `PublishRejected` with the row errors when rows break the contract;
        the previous partition is then unchanged."""
        request = pb.PublishPartitionRequest(
            dataset=dataset,
            partition_date=_date(date),
            source_uri=source,
            expected_sha256=expected_sha256,
        )
        try:
            for event in self._stub.PublishPartition(request, metadata=self._metadata):
                if event.HasField("progress"):
                    if on_progress is not None:
                        p = event.progress
                        on_progress(Progress(p.stage, p.bytes_read, p.total_bytes, p.rows_validated))
                elif event.HasField("result"):
                    return PublishResult(event.result.publication, event.result.unchanged)
        except grpc.RpcError as error:
            raise self._publish_error(error) from None
        raise FerryError("the server closed the publish without a result")

    def _publish_error(self, error: grpc.RpcError) -> FerryError:
        failure = from_rpc_error(error)
        publication_id = failure.metadata.get("publication_id", "")
        if failure.reason != "PUBLICATION_REJECTED" or not publication_id:
            return failure
        # The ledger has every row error; a caller who may not read it gets none listed.
        publication = self.get_publication(publication_id)
        errors = [RowError(e.line, e.column, e.reason) for e in publication.row_errors]
        return PublishRejected(failure, publication_id, errors)

    def get_publication(self, publication_id: str) -> pb.Publication:
        publication: pb.Publication = self._call(
            self._stub.GetPublication, pb.GetPublicationRequest(id=publication_id)
        )
        return publication

    def list_publications(self, dataset: str, date: DateLike | None = None) -> list[pb.Publication]:
        response: pb.ListPublicationsResponse = self._call(
            self._stub.ListPublications,
            pb.ListPublicationsRequest(dataset=dataset, partition_date=_date(date)),
        )
        return list(response.publications)

    def list_feeds(self, prefix: str = "") -> list[pb.FeedStatus]:
        """The scheduled feeds of the datasets you may see: next check, last error, attempts."""
        response: pb.ListFeedsResponse = self._call(
            self._stub.ListFeeds, pb.ListFeedsRequest(name_prefix=prefix)
        )
        return list(response.feeds)

    # Reading ------------------------------------------------------------------------------

    def read_rows(
        self,
        name: str,
        *,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        columns: Sequence[str] = (),
        limit: int = 0,
    ) -> Rows:
        """Reads a dataset or view; columns the caller may not see in clear come back masked."""
        request = pb.ReadRowsRequest(
            name=name,
            from_date=_date(from_date),
            to_date=_date(to_date),
            columns=list(columns),
            limit=limit,
        )
        result = Rows(columns=[], rows=[])
        try:
            for message in self._stub.ReadRows(request, metadata=self._metadata):
                if message.schema:
                    result.columns = [c.name for c in message.schema]
                    result.masked = [c.name for c in message.schema if c.masked]
                result.rows.extend(tuple(_value(v) for v in row.values) for row in message.rows)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return result

    # Access -------------------------------------------------------------------------------

    def grant_access(
        self,
        target: str,
        grantee: str,
        *,
        role: str = "reader",
        purpose: str = "",
        legal_basis: str | None = None,
        expires: dt.date | dt.datetime | None = None,
        clear_personal_data: bool = False,
    ) -> pb.Grant:
        """Grants `grantee` (e.g. "team:a") `role` ("reader" or "publisher") on a dataset or view."""
        request = pb.GrantAccessRequest(
            target=target,
            grantee=grantee,
            role=pb.Role.Value(f"ROLE_{role.upper()}"),
            purpose=purpose,
            legal_basis=pb.LegalBasis.Value(f"LEGAL_BASIS_{(legal_basis or 'unspecified').upper()}"),
            expires_at=_timestamp(expires),
            clear_personal_data=clear_personal_data,
        )
        grant: pb.Grant = self._call(self._stub.GrantAccess, request)
        return grant

    def revoke_access(self, grant_id: str) -> pb.Grant:
        grant: pb.Grant = self._call(self._stub.RevokeAccess, pb.RevokeAccessRequest(grant_id=grant_id))
        return grant

    def list_grants(self, target: str = "", *, grantee: str = "", include_inactive: bool = False) -> list[pb.Grant]:
        response: pb.ListGrantsResponse = self._call(
            self._stub.ListGrants,
            pb.ListGrantsRequest(target=target, grantee=grantee, include_inactive=include_inactive),
        )
        return list(response.grants)

    def server_info(self) -> pb.ServerInfo:
        info: pb.ServerInfo = self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest())
        return info

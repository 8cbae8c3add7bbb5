"""Offline stand-ins for the data hosts, used with the real clients: a pre-filled openml-python
cache, a local HTTP server for the UCI API and MedMNIST files, and a guard against the network."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

OPENML_NS = 'xmlns:oml="http://openml.org/openml"'


def fill_openml_cache(data_cache: Path, dataset_id: int, table: pd.DataFrame, target: str, name: str) -> Path:
    """Write what openml-python 0.15 keeps for a downloaded dataset, in its layout under
    ``<data_cache>/openml``: description.xml, features.xml and dataset_<id>.pq."""
    folder = Path(data_cache) / "openml" / "org" / "openml" / "www" / "datasets" / str(dataset_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "description.xml").write_text(f"""<oml:data_set_description {OPENML_NS}>
  <oml:id>{dataset_id}</oml:id>
  <oml:name>{name}</oml:name>
  <oml:version>1</oml:version>
  <oml:description>{name}, numeric regression benchmark version</oml:description>
  <oml:format>arff</oml:format>
  <oml:upload_date>2022-06-20T16:06:45</oml:upload_date>
  <oml:licence>Public</oml:licence>
  <oml:url>https://api.openml.org/data/v1/download/{dataset_id}/{name}.arff</oml:url>
  <oml:parquet_url>http://openml1.win.tue.nl/dataset{dataset_id}/dataset_{dataset_id}.pq</oml:parquet_url>
  <oml:file_id>{dataset_id}</oml:file_id>
  <oml:default_target_attribute>{target}</oml:default_target_attribute>
  <oml:visibility>public</oml:visibility>
  <oml:status>active</oml:status>
</oml:data_set_description>
""")
    features = "".join(
        f"<oml:feature><oml:index>{i}</oml:index><oml:name>{c}</oml:name><oml:data_type>numeric</oml:data_type>"
        f"<oml:is_target>{str(c == target).lower()}</oml:is_target><oml:is_ignore>false</oml:is_ignore>"
        f"<oml:is_row_identifier>false</oml:is_row_identifier><oml:number_of_missing_values>0</oml:number_of_missing_values>"
        f"</oml:feature>"
        for i, c in enumerate(table.columns)
    )
    (folder / "features.xml").write_text(f"<oml:data_features {OPENML_NS}>{features}</oml:data_features>\n")
    table.to_parquet(folder / f"dataset_{dataset_id}.pq", index=False)
    return folder


@pytest.fixture
def no_network(monkeypatch):
    """Any connection to a host other than 127.0.0.1 fails, as on an offline compute node."""
    real_connect = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost") and sock.family != socket.AF_UNIX:
            raise OSError(f"network disabled in this test (connect to {address})")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


class DataHost:
    """A local HTTP server playing the UCI API and a file host.

    ``uci[id] = (table, variables)`` serves ``/api/dataset?id=<id>`` (the UCI API's JSON) and
    ``/static/public/<id>/data.csv``; ``files[path] = bytes`` serves other files. ``mode`` makes
    every data answer fail: "truncate" (the body stops halfway), "hang" (no answer) or "error" (500).
    """

    def __init__(self):
        self.uci: dict[int, tuple[pd.DataFrame, list[dict]]] = {}
        self.files: dict[str, bytes] = {}
        self.mode = "ok"
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                host.requests.append(self.path)
                url = urllib.parse.urlparse(self.path)
                if url.path == "/api/dataset":
                    dataset_id = int(urllib.parse.parse_qs(url.query)["id"][0])
                    return self.send(200, json.dumps(host.api_answer(dataset_id)).encode(), "application/json")
                if host.mode == "hang":
                    time.sleep(30)
                    return None
                if host.mode == "error":
                    return self.send(500, b"internal error", "text/plain")
                body = host.body_of(url.path)
                if body is None:
                    return self.send(404, b"not found", "text/plain")
                if host.mode == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                return self.send(200, body, "application/octet-stream")

            def send(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def api_answer(self, dataset_id: int) -> dict:
        if dataset_id not in self.uci:
            return {"status": 404, "message": f"Dataset with id {dataset_id} not found"}
        table, variables = self.uci[dataset_id]
        return {
            "status": 200,
            "data": {
                "uci_id": dataset_id,
                "name": f"dataset {dataset_id}",
                "abstract": "",
                "num_instances": len(table),
                "data_url": f"{self.url}/static/public/{dataset_id}/data.csv",
                "has_missing_values": "no",
                "missing_values_symbol": None,
                "variables": variables,
                "additional_info": None,
                "intro_paper": None,
            },
        }

    def body_of(self, path: str) -> bytes | None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["static", "public"] and parts[-1] == "data.csv" and int(parts[2]) in self.uci:
            return self.uci[int(parts[2])][0].to_csv(index=False).encode()
        return self.files.get(path)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def uci_variables(table: pd.DataFrame, target: str, other=()) -> list[dict]:
    role = lambda c: "Target" if c == target else ("Other" if c in other else "Feature")  # noqa: E731
    return [
        {
            "name": c,
            "role": role(c),
            "type": "Continuous",
            "demographic": None,
            "description": None,
            "units": None,
            "missing_values": "no",
        }
        for c in table.columns
    ]


@pytest.fixture
def data_host(monkeypatch):
    """A running DataHost, with the real ucimlrepo client pointed at it (ucimlrepo reads its
    module constant API_BASE_URL on every call)."""
    import ucimlrepo.fetch

    with DataHost() as host:
        monkeypatch.setattr(ucimlrepo.fetch, "API_BASE_URL", f"{host.url}/api/dataset")
        yield host


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of interrupted writes (io.atomic_path names them .<name>.*.part)."""
    return sorted(Path(folder).rglob("*.part"))

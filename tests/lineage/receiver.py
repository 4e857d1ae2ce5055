"""An OpenLineage receiver for the tests that checks every event against the spec as the
OpenLineage project publishes it in code: openlineage-python's classes generated from the spec's
JSON Schema (`openlineage.client.generated`).

Each event is rebuilt strictly from its JSON with those classes: every key must be one the spec
defines (no extra keys, every required one present), every value of the spec's type, enums and
validators (UUIDs, date-times, URIs) as the classes check them, each facet by the class of its
name, and the rebuilt event, serialised again with the client's own Serde, must equal what was
received (so each facet's `_schemaURL` is the spec version the classes are). What was received,
and what is wrong with it, is kept for the test to read:

    python receiver.py <port file>
    POST /<anything>           an event (answered 201, as Marquez does, valid or not)
    GET  /__events             [{"path", "authorization", "event", "problems": [...]}]
"""

from __future__ import annotations

import enum
import json
import sys
import threading
import types
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attr
from openlineage.client.generated import (
    base,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    schema_dataset,
    sql_job,
)
from openlineage.client.serde import Serde

# The facets the jobs send, by where they are and their name in the spec.
FACETS: dict[type, dict[str, type]] = {
    base.RunFacet: {
        "parent": parent_run.ParentRunFacet,
        "errorMessage": error_message_run.ErrorMessageRunFacet,
    },
    base.JobFacet: {
        "jobType": job_type_job.JobTypeJobFacet,
        "sql": sql_job.SQLJobFacet,
    },
    base.DatasetFacet: {"schema": schema_dataset.SchemaDatasetFacet},
    base.InputDatasetFacet: {},
    base.OutputDatasetFacet: {
        "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
    },
}
MAX_BODY = 4 * 1024 * 1024


class Invalid(Exception):
    pass


def build(cls: type, data: typing.Any, where: str) -> typing.Any:
    if not isinstance(data, dict):
        raise Invalid(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attr.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise Invalid(f"{where}: {', '.join(unknown)} not in the spec's {cls.__name__}")
    kwargs = {}
    for name, field in fields.items():
        if name not in data:
            if field.init and field.default is attr.NOTHING:
                raise Invalid(f"{where}: {name} is required")
            continue
        if field.init:
            kwargs[field.alias] = convert(hints[name], data[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise Invalid(f"{where}: {cls.__name__}: {e}") from e


def convert(tp: typing.Any, value: typing.Any, where: str) -> typing.Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if len(real) != 1:
            raise Invalid(f"{where}: ambiguous type {tp}")
        return convert(real[0], value, where)
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected an array")
        return [convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(f"{where}: expected an object")
        kinds = FACETS.get(args[1])
        if kinds is not None:
            out = {}
            for key, facet in value.items():
                if key not in kinds:
                    raise Invalid(f"{where}: facet {key!r} is not one the jobs send as a {args[1].__name__}")
                out[key] = build(kinds[key], facet, f"{where}.{key}")
            return out
        return {k: convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if attr.has(tp):
        return build(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError as e:
            raise Invalid(f"{where}: {e}") from e
    if tp is bool:
        if not isinstance(value, bool):
            raise Invalid(f"{where}: expected a boolean")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(f"{where}: expected an integer")
        return value
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise Invalid(f"{where}: expected a number")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise Invalid(f"{where}: expected a string")
        return value
    if tp is typing.Any:
        return value
    raise Invalid(f"{where}: no rule for {tp}")


def pruned(value: typing.Any) -> typing.Any:
    """Without nulls and empty objects or arrays, which the client's Serde leaves out too."""
    if isinstance(value, dict):
        out = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def problems_of(event: typing.Any) -> list[str]:
    try:
        rebuilt = build(base.RunEvent, event, "RunEvent")
    except Invalid as e:
        return [str(e)]
    again = pruned(json.loads(Serde.to_json(rebuilt)))
    if again != pruned(event):
        return [f"the spec's classes read it as {json.dumps(again, sort_keys=True)}, not {json.dumps(pruned(event), sort_keys=True)}"]
    return []


RECEIVED: list[dict] = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.reply(413, b"{}")
        body = self.rfile.read(length)
        try:
            event = json.loads(body)
            problems = problems_of(event)
        except ValueError as e:
            event, problems = None, [f"not JSON: {e}"]
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            problems.append(f"Content-Type is {self.headers.get('Content-Type')!r}")
        with LOCK:
            RECEIVED.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "event": event,
                    "problems": problems,
                }
            )
        self.reply(201, b"{}")

    def do_GET(self):  # noqa: N802
        if self.path != "/__events":
            return self.reply(404, b"{}")
        with LOCK:
            body = json.dumps(RECEIVED).encode()
        self.reply(200, body)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as out:
        out.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()

"""Simple TensorFlow Serving's generated requests and clients: ``GET /v1/models/<name>/gen_json`` and
``GET /v1/models/<name>/gen_client?language=bash|python|golang|javascript``.

TF Serving's REST front routes both here (their paths are under ``/v1``, where TF Serving has none). A
client sends the model's example request (:func:`tfaas.codecs.sts_json.example_request`) to the server
the request for it reached (STS's send it to ``http://127.0.0.1:8500``) and prints the answer. Each uses
only its language's standard library, or curl (STS's Python one needs ``requests``, its JavaScript one
the deprecated ``request`` package).
"""

from __future__ import annotations

import json
from string import Template

from tfaas.codecs import sts_json
from tfaas.errors import InvalidArgument
from tfaas.inference.service import InferenceService
from tfaas.server_core import ModelSpec

DEFAULT_LANGUAGE = "bash"
"""The language of a client when the request names none (as in STS)."""

_BASH = Template("""\
#!/usr/bin/env bash
# Calls model $model on $url with an example request built from its signature, and prints the answer.
curl --silent --show-error -H "Content-Type: application/json" -X POST --data-binary @- $url <<'REQUEST'
$body
REQUEST
""")

_PYTHON = Template("""\
#!/usr/bin/env python3
\"\"\"Calls model $model on $url with an example request built from its signature, and prints the answer.\"\"\"

import sys
import urllib.error
import urllib.request

ENDPOINT = $url_literal
BODY = $body_literal


def main() -> int:
    request = urllib.request.Request(ENDPOINT, data=BODY.encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            print(response.read().decode(), end="")
    except urllib.error.HTTPError as error:
        print(error.read().decode(), end="")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
""")

_GOLANG = Template("""\
// Calls model $model on $url with an example request built from its signature, and prints the answer.
package main

import (
\t"fmt"
\t"io"
\t"net/http"
\t"os"
\t"strings"
)

const endpoint = $url_literal
const body = $body_literal

func main() {
\tresponse, err := http.Post(endpoint, "application/json", strings.NewReader(body))
\tif err != nil {
\t\tfmt.Fprintln(os.Stderr, err)
\t\tos.Exit(1)
\t}
\tdefer response.Body.Close()
\tanswer, err := io.ReadAll(response.Body)
\tif err != nil {
\t\tfmt.Fprintln(os.Stderr, err)
\t\tos.Exit(1)
\t}
\tfmt.Print(string(answer))
\tif response.StatusCode != http.StatusOK {
\t\tos.Exit(1)
\t}
}
""")

_JAVASCRIPT = Template("""\
#!/usr/bin/env node
// Calls model $model on $url with an example request built from its signature, and prints the answer.
const http = require("http");

const endpoint = $url_literal;
const body = JSON.stringify($body);

const request = http.request(
  endpoint,
  { method: "POST", headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } },
  (response) => {
    let answer = "";
    response.setEncoding("utf8");
    response.on("data", (chunk) => (answer += chunk));
    response.on("end", () => {
      process.stdout.write(answer);
      if (response.statusCode !== 200) process.exitCode = 1;
    });
  },
);
request.on("error", (error) => {
  console.error(error.message);
  process.exitCode = 1;
});
request.end(body);
""")

_TEMPLATES = {"bash": _BASH, "python": _PYTHON, "golang": _GOLANG, "javascript": _JAVASCRIPT}
LANGUAGES = tuple(_TEMPLATES)


def gen_json(service: InferenceService, spec: ModelSpec) -> bytes:
    """``gen_json``: a request body ``POST /`` accepts for the model, built from the signatures of the
    version ``spec`` resolves to."""
    return sts_json.example_json(spec.name, service.metadata(spec).signature_def_map)


def gen_client(service: InferenceService, spec: ModelSpec, language: str, origin: str) -> bytes:
    """``gen_client``: the source of a client in ``language`` (bash for ``""``) that sends the model's
    example request to ``origin`` (``http://host:port``) and prints the answer."""
    if (language or DEFAULT_LANGUAGE) not in _TEMPLATES:
        raise InvalidArgument(
            f"Language: {language} is not supported to gen client (supported: {', '.join(LANGUAGES)})"
        )
    body = gen_json(service, spec).decode("utf-8")
    return client_source(language or DEFAULT_LANGUAGE, spec.name, f"{origin}/", body).encode("utf-8")


def client_source(language: str, model: str, url: str, body: str) -> str:
    """The source of a client in ``language`` (one of :data:`LANGUAGES`) that posts the JSON ``body`` (one
    line) for ``model`` to ``url`` and prints the answer."""
    # NOTE: a JSON string (ensure_ascii off: Go refuses the surrogate pairs of \u escapes) is a string
    # literal of Python, Go and JavaScript alike; JSON text is a JavaScript expression, and a bash here-doc
    # holds one line of it unchanged. Origins are checked by the transport, model names are plain words.
    return _TEMPLATES[language].substitute(
        model=model, url=url, body=body, url_literal=_literal(url), body_literal=_literal(body)
    )


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)

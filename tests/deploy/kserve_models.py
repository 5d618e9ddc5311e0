"""Reads KServe objects with the KServe SDK's own models; run by the manifest tests in a venv of its own.

Input (stdin): a JSON list of Kubernetes objects (ServingRuntime, ClusterServingRuntime, InferenceService).
Output (stdout): a JSON list with, for each object, ``{"kind", "name", "error", "unknown"}``: ``error``
is what the SDK's models refused (a required field missing, a value out of its enum), ``unknown`` the
paths of fields the models do not have, found by writing the object back from the models and comparing
(their deserializer drops what it does not know without a word).

NOTE: not imported by the tests: the ``kserve`` package pins ``protobuf<7``, which tfaas's own venv
cannot have, so this runs in the interpreter of ``test_kubernetes_manifests.kserve_python``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import kubernetes.client.models
from kserve import ApiClient, models

MODELS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
"""The SDK's model class for each (apiVersion, kind)."""


class _Body:
    """What ``ApiClient.deserialize`` reads an object from (the body of a response of the API server)."""

    def __init__(self, obj: Any) -> None:
        self.data = json.dumps(obj)


def _resolve_kubernetes_types() -> None:
    """Let the SDK's deserializer find the Kubernetes types its models name (``V1Container``...).

    NOTE: KServe's models name them as strings, looked up in ``kserve.models`` only; they live in the
    kubernetes client (a version whose models have the same generator's ``openapi_types``).
    """
    for name in dir(kubernetes.client.models):
        if name.startswith("V") and not hasattr(models, name):
            setattr(models, name, getattr(kubernetes.client.models, name))


def unknown_paths(given: Any, written: Any, path: str = "") -> list[str]:
    """Paths of ``given`` that are missing from, or differ in, ``written`` (the object as the models hold it)."""
    if isinstance(given, dict) and isinstance(written, dict):
        found = []
        for key, value in given.items():
            if key not in written:
                found.append(f"{path}.{key}")
            else:
                found.extend(unknown_paths(value, written[key], f"{path}.{key}"))
        return found
    if isinstance(given, list) and isinstance(written, list) and len(given) == len(written):
        return [p for i, (a, b) in enumerate(zip(given, written)) for p in unknown_paths(a, b, f"{path}[{i}]")]
    return [] if given == written else [path or "."]


def check(client: ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    """One object's report (see the module's docstring)."""
    report = {"kind": obj.get("kind"), "name": obj.get("metadata", {}).get("name"), "error": None, "unknown": []}
    model = MODELS.get((obj.get("apiVersion"), obj.get("kind")))
    if model is None:
        report["error"] = f"no KServe model for {obj.get('apiVersion')} {obj.get('kind')}"
        return report
    try:
        parsed = client.deserialize(_Body(obj), model)
    except (ValueError, TypeError) as error:
        report["error"] = f"{type(error).__name__}: {error}"
        return report
    report["unknown"] = unknown_paths(obj, client.sanitize_for_serialization(parsed))
    return report


def main() -> None:
    _resolve_kubernetes_types()
    client = ApiClient()
    json.dump([check(client, obj) for obj in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()

"""Calls a server through tritonclient's HTTP and gRPC clients, the way their users do; run by the e2e tests in
tritonclient's own interpreter (``triton.py``), never imported by them.

Reads ``{"http": "host:port", "grpc": "host:port", "calls": [call, ...]}`` as JSON on stdin and prints one
answer per call as JSON. A call names its ``protocol`` (``http`` or ``grpc``) and its ``call``:

- ``live``, ``ready``, ``server_metadata``, ``index``: the server's;
- ``model_ready``, ``model_metadata``, ``load``, ``unload``: of ``model`` (and ``version``);
- ``infer``: ``model`` (``version``, ``id``, ``parameters``) on ``inputs`` ``[[name, datatype, shape, flat
  values, binary]]`` (BYTES values as base64 text; ``binary`` is HTTP's ``binary_data``), asking for
  ``outputs`` ``[[name, binary]]`` (none: every output, as the client asks by default).

``headers`` go with any call. An answer is ``{"result": ...}`` (an infer's: ``model_name``,
``model_version``, ``id`` and ``outputs`` ``{name: {"datatype", "shape", "data"}}``, BYTES as base64), or
``{"error": {"status", "message"}}`` from the client's ``InferenceServerException``.
"""

import base64
import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, triton_to_np_dtype


def array(datatype, shape, values):
    if datatype == "BYTES":
        return np.array([base64.b64decode(v) for v in values], dtype=np.object_).reshape(shape)
    return np.array(values, dtype=triton_to_np_dtype(datatype)).reshape(shape)


def plain(values):
    """Flat values for JSON; BYTES as base64 (from JSON, tritonclient gives them as text)."""
    flat = values.ravel().tolist()
    if values.dtype == np.object_:
        return [base64.b64encode(v.encode() if isinstance(v, str) else v).decode() for v in flat]
    return flat


def infer(module, client, call, protocol):
    inputs = []
    for name, datatype, shape, values, binary in call["inputs"]:
        tensor = module.InferInput(name, shape, datatype)
        if protocol == "http":
            tensor.set_data_from_numpy(array(datatype, shape, values), binary_data=binary)
        else:
            tensor.set_data_from_numpy(array(datatype, shape, values))
        inputs.append(tensor)
    outputs = None
    if "outputs" in call:
        if protocol == "http":
            outputs = [module.InferRequestedOutput(name, binary_data=binary) for name, binary in call["outputs"]]
        else:
            outputs = [module.InferRequestedOutput(name) for name, _ in call["outputs"]]
    result = client.infer(
        call["model"],
        inputs,
        model_version=call.get("version", ""),
        outputs=outputs,
        request_id=call.get("id", ""),
        headers=call.get("headers"),
        parameters=call.get("parameters"),
    )
    response = result.get_response() if protocol == "http" else result.get_response(as_json=True)
    answered = {}
    for output in response["outputs"]:
        data = result.as_numpy(output["name"])
        answered[output["name"]] = {"datatype": output["datatype"], "shape": list(data.shape), "data": plain(data)}
    return {
        "model_name": response["model_name"],
        "model_version": response.get("model_version", ""),
        "id": response.get("id", ""),
        "outputs": answered,
    }


def answer(plan, call):
    protocol = call["protocol"]
    module = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(plan[protocol])
    json_form = {} if protocol == "http" else {"as_json": True}
    headers = call.get("headers")
    name, version = call.get("model", ""), call.get("version", "")
    calls = {
        "live": lambda: client.is_server_live(headers=headers),
        "ready": lambda: client.is_server_ready(headers=headers),
        "server_metadata": lambda: client.get_server_metadata(headers=headers, **json_form),
        "model_ready": lambda: client.is_model_ready(name, version, headers=headers),
        "model_metadata": lambda: client.get_model_metadata(name, version, headers=headers, **json_form),
        "index": lambda: client.get_model_repository_index(headers=headers, **json_form),
        "load": lambda: client.load_model(name, headers=headers),
        "unload": lambda: client.unload_model(name, headers=headers),
        "infer": lambda: infer(module, client, call, protocol),
    }
    try:
        return {"result": calls[call["call"]]()}
    except InferenceServerException as error:
        return {"error": {"status": str(error.status()), "message": error.message()}}
    finally:
        client.close()


def main():
    plan = json.load(sys.stdin)
    json.dump([answer(plan, call) for call in plan["calls"]], sys.stdout)


if __name__ == "__main__":
    main()

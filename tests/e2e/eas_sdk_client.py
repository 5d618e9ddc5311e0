"""Calls a server through PAI-EAS's Python SDK (``eas_prediction``) the way its users do; run by the e2e tests
in the SDK's own interpreter (``eas_sdk.py``), never imported by them.

Reads ``{"endpoint": URL, "calls": [call, ...]}`` as JSON on stdin and prints one answer per call as JSON. A
call names its ``service`` and ``token`` (none: no token set) and is one of:

- ``{"signature": S, "feeds": [[name, shape, "DT_...", values], ...], "fetches": [...]}``: a ``TFRequest``
  built with ``add_feed``/``add_fetch`` and sent by ``PredictClient.predict``; answered with
  ``{"outputs": {name: {"dtype", "shape", "values"}}}`` (from ``TFResponse``) or ``{"code", "message"}``
  (its ``PredictException``);
- ``{"empty": true}``: a ``StringRequest("")``, answered with ``{"structure": text}``;
- a ``TFRequest`` with ``"write_to": path``: its bytes (``to_string()``) written there as EAS's warm-up file.

String values travel as text in, base64 out. The answers also carry ``utc_offset``, the client's.
"""

import base64
import json
import sys
import time

from eas_prediction import PredictClient, PredictException, StringRequest, TFRequest


def build(call):
    if call.get("empty"):
        return StringRequest("")
    request = TFRequest(call.get("signature", ""))
    for name, shape, dtype, values in call.get("feeds", []):
        if dtype == "DT_STRING":
            values = [value.encode() for value in values]
        request.add_feed(name, shape, getattr(TFRequest, dtype), values)
    for name in call.get("fetches", []):
        request.add_fetch(name)
    return request


def plain(value):
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value


def outputs(response):
    answer = {}
    for name, array in response.response.outputs.items():
        values = response.get_values(name)
        if values is None:  # NOTE: the SDK reads no field for DT_UINT8 and DT_UINT16
            values = array.int_val
        answer[name] = {
            "dtype": array.dtype,
            "shape": response.get_tensor_shape(name),
            "values": list(map(plain, values)),
        }
    return answer


def answer(endpoint, call):
    request = build(call)
    if "write_to" in call:
        with open(call["write_to"], "wb") as file:
            file.write(request.to_string())
        return {"written": call["write_to"]}
    client = PredictClient(endpoint, call["service"])
    if call.get("token"):
        client.set_token(call["token"])
    client.set_timeout(30000)
    client.init()
    try:
        response = client.predict(request)
    except PredictException as error:
        message = error.message.decode() if isinstance(error.message, bytes) else str(error.message)
        return {"code": error.code, "message": message}
    finally:
        client.destroy()
    if call.get("empty"):
        return {"structure": response.response_data.decode()}
    return {"outputs": outputs(response)}


def main():
    plan = json.load(sys.stdin)
    offset = time.localtime().tm_gmtoff
    answers = [dict(answer(plan["endpoint"], call), utc_offset=offset) for call in plan["calls"]]
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()

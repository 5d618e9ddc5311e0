"""The fronts: one thin adapter per protocol over the inference service (a codec parses the wire format,
the service answers, the codec encodes); the transport that carries them lives in ``tfaas.server``."""

LOOP_REQUEST_BYTES = 64 * 1024
"""Where every front's request work runs, by the size of the request's body (REST) or message (gRPC): up to
this size it is parsed, decoded and its answer encoded on the worker's event loop, its model call awaited
(a one-row dense42 body takes ~20 µs there, less than a hop to the pool and back); a larger one does all its
work on the service's pool, so that a big batch never stalls the worker's other connections. 64 KiB holds
every batch-1 request of typical models and small batches (dense42: about 200 rows in TF Serving's JSON)."""

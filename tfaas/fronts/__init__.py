"""The fronts: one thin adapter per protocol over the inference service (a codec parses the wire format,
the service answers, the codec encodes); the transport that carries them lives in ``tfaas.server``."""

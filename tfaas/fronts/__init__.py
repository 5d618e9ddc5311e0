"""The fronts: one thin adapter per protocol (parse with a codec, call the inference service, encode)."""

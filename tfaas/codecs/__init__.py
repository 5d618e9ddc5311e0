"""Wire formats to the inference service's types and back: no transport, no lifecycle.

One module per format: TF Serving's REST JSON, its ``TensorProto`` messages, and the other protocols'.
"""

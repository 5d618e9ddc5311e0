"""Dynamic batching: concurrent requests to one signature run as one batch (TF Serving's batching)."""

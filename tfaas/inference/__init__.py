"""The inference service every front calls (``service.py``), its typed requests and results, and its metrics."""

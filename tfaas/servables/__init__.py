"""TensorFlow servables: loaders that turn a version directory into something that answers requests.

This package is the only place that imports TensorFlow, and it does so lazily, inside ``load()``, so
that importing ``tfaas`` (and forking gunicorn workers) never touches TensorFlow.
"""

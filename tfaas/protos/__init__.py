"""Protobuf messages of TFaaS's API (``tfaas.proto``) and their generated Python module."""

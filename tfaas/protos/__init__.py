"""Protobuf messages of TFaaS's API (``tfaas.proto``) and PAI-EAS's TensorFlow processor (``tf_predict.proto``), and
their generated Python modules."""

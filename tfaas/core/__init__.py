"""The servable lifecycle: ids, states, sources, loaders, policies and the manager.

Pure Python on purpose: no TensorFlow and no Flask, so it is testable with fake loaders in milliseconds.
"""

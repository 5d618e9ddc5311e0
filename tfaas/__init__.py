"""tfaas: a TensorFlow model server with TF Serving's lifecycle and REST API, and TFaaS's API.

Importing the package is cheap on purpose: it imports no TensorFlow, starts no thread and touches no
disk. All of that happens when a server is built (see ``tfaas.server_core``).
"""

__version__ = "0.1.0"

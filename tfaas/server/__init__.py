"""HTTP transport: the ASGI front (``/v1`` to TF Serving's REST front, the rest to the Flask app), the Flask
app factory and its route modules (health, metrics, the OpenAPI document, TFaaS's API), and the gunicorn
application.

Routes only translate HTTP into calls on the inference service (or the ``ServerCore``) and back.
"""

"""HTTP transport: the Flask app factory, the route modules, and the gunicorn application.

Routes only translate HTTP into calls on ``tfaas.server_core.ServerCore`` and back.
"""

"""Serve the app with waitress, a production WSGI server (threads, pure Python)."""

__all__ = ["serve"]


def serve(app, *, host="127.0.0.1", port=8000, threads=4, log=print):
    """Serve ``app`` until interrupted.

    Parameters
    ----------
    app : flask.Flask
        From :func:`skcxr.serve.create_app`.
    host : str, default="127.0.0.1"
        Loopback by default; put a reverse proxy in front to publish it.
    port : int, default=8000
        ``0`` picks a free port.
    threads : int, default=4
        Worker threads of waitress.
    log : callable, default=print
        Receives the address once the socket is bound.
    """
    from waitress.server import create_server

    server = create_server(app, host=host, port=port, threads=threads)
    log(
        f"skcxr serve: listening on http://{server.effective_host}:{server.effective_port}/"
    )
    try:
        server.run()
    finally:
        server.close()

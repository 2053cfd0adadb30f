"""Live servers for tests and benchmarks: a WSGI app on 127.0.0.1, a free port, a thread."""

import threading

from werkzeug.serving import make_server


class LiveServer:
    """A WSGI app served on 127.0.0.1 on a free port, in a thread, until stop()."""

    def __init__(self, app=None):
        self.app = app
        self.server = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def _dispatch(self, environ, start_response):
        # The port is known before the app exists, so the app can be built with its own URL.
        return self.app(environ, start_response)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

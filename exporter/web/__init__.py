"""What is served: the WSGI app, auth, the metrics collectors, the status document and page."""

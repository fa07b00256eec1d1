"""``tagmango-import dashboard``: one web page per import, read from the job state in Redis.

``data`` is the only module that reads job state (the adapter to the row store), ``chart`` draws the
request-rate chart as SVG, ``pages`` renders HTML, ``security`` holds basic auth and the CSRF checks,
``app`` wires them into a Starlette application and ``server`` runs it.
"""

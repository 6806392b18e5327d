"""Side-by-side measurements of alternatives to the relay's HTTP stack (not the relay itself).

``python -m bench.alternatives.client``: the upstream client, aiohttp against pyreqwest.
``python -m bench.alternatives.server``: the server, aiohttp.web against granian (ASGI, RSGI).
Both need the candidates installed by hand (``pip install pyreqwest granian``); they are not
dependencies of the relay. Figures and verdicts: ``bench/README.md``, "Alternatives measured".
"""

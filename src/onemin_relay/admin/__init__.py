"""Operating the gateway: the admin HTTP API (``/admin/v1``) and the matching commands
(``onemin-relay keys|usage|ledger|db``), both over the same store and the same views."""

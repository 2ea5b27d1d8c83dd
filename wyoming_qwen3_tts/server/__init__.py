"""The server side: Wyoming events in, audio events out (never imports torch).

    connection.py (one client) -> admission.py (limits) -> segmentation.py, languages.py
    -> worker.py (the one synthesis thread) -> router.py (voice -> engine, the only module that
    calls one) -> pool.py (loaded checkpoints) ... audio back through the worker's channels ->
    sender.py (audio events, bounded by what the client reads)

catalog.py and voice_folders.py know every voice; protocol.py reads events within bounds;
discovery.py announces the server over zeroconf.
"""

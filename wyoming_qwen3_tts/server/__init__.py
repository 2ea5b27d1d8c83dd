"""The server side: Wyoming events in, audio events out (never imports torch).

See ARCHITECTURE.md: connection.py (one client) -> speech.py (one request to speak:
admission.py, segmentation.py, untrusted.py) -> worker.py (the one synthesis thread; clients
take turns; languages.py, normalize.py, audio_effects.py) -> router.py (voice -> engine, the
only module that calls one) -> pool.py (loaded checkpoints); audio back through the worker's
channels -> sender.py (audio events).  catalog.py and voice_folders.py know every voice;
protocol.py reads events within bounds; discovery.py announces the server over zeroconf.
"""

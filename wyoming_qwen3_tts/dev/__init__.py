"""Developer tools, not needed to serve (the add-on image leaves this package out):
random checkpoints of the real architecture (checkpoints.py), benchmarks (bench.py,
bench_server.py), the soak test (soak.py) and the server-process helper the tests share
(serverproc.py)."""

"""The load and fault tier: Stead in its production topology (PostgreSQL + Redis, two API-only
`stead run` replicas, two `stead worker` processes, all on 127.0.0.1) under hundreds of streams and
runs at once, with Redis frozen and a worker killed in the middle. It proves what clients rely on
under load: every streamed event arrives exactly once and in order (or the stream ends with an
`error` event), every run finishes with the right status and output, cancelled runs end
`interrupted`, no thread stays `busy`, a killed worker's runs finish elsewhere without running
their finished nodes again, and everything recovers without a restart.

Run it alone with `pytest tests/load` (or leave it out with `-m "not load"`); it takes a few
minutes. Speed is not asserted here: bench/load.py measures the same scenarios.
"""

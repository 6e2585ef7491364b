"""The fingerprint index: server (segments, WAL, snapshots, HTTP) and sharded client.

It speaks the fpindex HTTP API both ways: our api can use an upstream fpindex and
upstream clients can use ours. Start reading at `store.py` (server side) or `client.py`.
"""

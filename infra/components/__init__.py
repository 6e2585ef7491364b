"""ComponentResources of the production deployment: one module per deployable unit.

``stack.AcoustidStack`` composes ``database.Database`` (CloudNativePG), ``messaging.Messaging``
(NATS JetStream), ``cache.Cache`` (Redis with Sentinel) and ``app.AcoustidApp`` (our chart).
Every size they set comes from ``acoustid_stack.sizing``.
"""

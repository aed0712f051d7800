"""Event -> bytes encoders for the sinks: ECS JSON, ArcSight CEF, RFC 5424 syslog frames.

Pure functions, no I/O: each takes an `Event` (whose body is the canonical
ECS JSON already hashed into the chain) and returns the bytes a sink writes.
"""

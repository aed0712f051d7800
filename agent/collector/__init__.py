"""The reference collector: takes agents' event batches over HTTP(S), checks and stores them.

    server.py   HTTP front (auth, limits, parsing), silence checks, forwarding thread
    store.py    SQLite: events as received (de-duplicated by id), per-agent state
    checks.py   sequence gaps, reorders, hash-chain breaks, silent agents -> alert events

Shares only values, errors, logs and config with the agent; never imports
agent.report (the CLI composes the forwarding sinks).
"""

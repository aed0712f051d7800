"""Act stage: the quarantine vault (vault.py), its move mechanics, crash journal and sealing.

vault.py      Vault: quarantine / recover / list / show / restore / export / purge
moves.py      rename or verified (sealed) copy of the scanned inode; FileChanged
journal.py    one fsynced journal per move; the EGRESS_GUARD_FAULT test hook
recovery.py   finish or roll back a move a crash interrupted
seal.py       X25519 + HKDF-SHA256 + ChaCha20-Poly1305 STREAM to the team key
items.py      `<id>.json` metadata beside each item
release.py    restore / export: verified, never overwriting
"""

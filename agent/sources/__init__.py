"""Sources: where Arrivals come from (inotify watch, tree walks, catch-up at start).

watch.py        Watcher: inotify (watchdog) events -> settle -> Arrival, overflow/limit rescans
settle.py       SettleTracker: when a file is complete (closed, quiet, moved in, max wait)
sweep.py        walk(): regular files under roots, never through a symlink; exclusions
catchup.py      catchup(): files new or changed since their last scan (at start)
state.py        ScanState: SQLite (device, inode) -> last scanned version
attribution.py  find_writer(): which process has a file open for writing (/proc)
"""

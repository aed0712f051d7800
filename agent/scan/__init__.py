"""Scan stage: open safely, unpack, YARA match in chunks, validate each hit -> ScanResult."""

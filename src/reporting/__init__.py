"""Sweep bookkeeping and the paper-table report built from many runs' metrics.json files."""

"""The hourly headroom study (docs/studies/headroom.md): study.py runs it, inputs.py reads its
hourly loads, report.py writes its tables and text."""

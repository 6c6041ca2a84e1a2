"""The price study (docs/studies/price.md): study.py runs it and writes its files; periods.py
makes its periods (a snapshot or the hours of a day); workload.py schedules servers' work over
the day; ac.py checks it in OpenDSS and corrects it."""

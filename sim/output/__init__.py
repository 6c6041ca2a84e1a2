"""Run and sweep directories: file names, atomic writers, readers."""

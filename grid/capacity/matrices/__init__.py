"""The linear algebra under the limits: shift factors H, line flows per nodal withdrawal
(shift_factors.py), and sparse rows built from dense blocks (csr_rows.py)."""

"""What a capacity study is asked: the candidate buses (candidates.py), the security criteria it
must hold against (criteria.py), the AC corrections it takes in (corrections.py) and the
sampling-error allowance of a risk level (binomial.py)."""

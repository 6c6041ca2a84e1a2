"""The three-phase feeder models: LinDist3Flow, the DSO's OPF with DLMPs, and the aggregator's bilevel MILP."""

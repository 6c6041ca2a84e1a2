"""Market participants: data-center bidders, the DSO, valuation profiles and bidding strategies."""

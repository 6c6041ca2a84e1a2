"""The mechanisms' engines: the SAA, the clock auction, VCG, the interconnection queue, and tie-breaking."""

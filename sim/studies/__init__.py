"""The studies by name (auction, capacity, plan, price, sweep), each a command that writes a directory."""

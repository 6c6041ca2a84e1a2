"""Networks, background-load scenarios and the Pyomo formulations that quantify capacity per bus."""

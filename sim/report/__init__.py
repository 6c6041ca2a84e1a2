"""What a study prints and draws: text tables, figures, the HTML report and queries over sweep tables."""

"""The sampling ablation: plan the grid, run it resumably, aggregate the table, the plot and the report."""

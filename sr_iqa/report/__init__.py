"""Visual reports: crop sheets and the self-contained HTML page of an ablation."""

"""Statistics of a generated dataset, as the paper reports them (Table 1, Figures 2-4),
computed from plain records so the HTML report, the dataset card and run.json share them."""

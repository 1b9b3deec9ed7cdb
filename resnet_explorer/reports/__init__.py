"""What the runs say: comparisons of runs and twins (`compare`), the findings every page states (`findings`),
the lens registry and its saved results (`explain`) and the report bundle (`bundle`)."""

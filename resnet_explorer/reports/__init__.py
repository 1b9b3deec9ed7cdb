"""What the runs say: comparisons of runs and twins (`compare`), the findings every page states (`findings`),
the lens registry and its saved results (`explain`), attribution as a task of the analysis process (`attribute`),
the tasks that process runs by name (`tasks`) and the report bundle (`bundle`)."""

"""How long work runs: one child-process protocol (`child`), the training and analysis children (`worker`,
`explain_worker`), the option schema every task's flags and forms come from (`options`), how a job ended
(`stops`) and time estimates (`estimates`)."""

"""The access wing: principals and keys, grants and their workflow, decisions, budgets."""

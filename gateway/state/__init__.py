"""The state wing: the state database's engine, tables, migrations and WAL checkpoints."""

"""Example kmat plugins: a transport (`paired-l2`) and a task (`folder-pair`)."""

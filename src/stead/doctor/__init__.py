"""`stead doctor`: one line per thing a server depends on (its project, database, Redis,
enrollment key, disk, port and clock), each ok, warning or failed with the fix."""

"""Git access through dulwich: the only package that imports it."""

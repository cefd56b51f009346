"""SSH remotes without an ``ssh`` binary: URLs, settings, errors (here), and the paramiko connection.

Only :mod:`lfsreg.ssh.connection` imports paramiko, and nothing imports it until an SSH
location is opened, so local and HTTPS work never pays for it.
"""

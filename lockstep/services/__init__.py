"""Write side: every function checks permission, writes, and audits in one transaction."""

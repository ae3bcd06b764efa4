"""Reports people can send: the executive weekly report (PDF, HTML) and a customer status PDF."""

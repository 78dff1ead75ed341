"""Code that several built-in plugins share: the sandbox and its tool sets, model cards, the
response cache, memory measurement. Plugins import from here, never from another plugin's
private modules; nothing here registers hooks."""

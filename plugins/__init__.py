"""Built-in plugins, registered through entry points exactly as third-party plugins are."""

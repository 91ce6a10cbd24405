"""Process supervision: one supervisor task per model owns its server process."""

"""The `chatkit-kit demo` server (demo only: one local user)."""

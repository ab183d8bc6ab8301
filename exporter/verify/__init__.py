"""Is the backup restorable: content checks and the pool that runs them."""

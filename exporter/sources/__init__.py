"""Where backups are seen: listings, the stat helper, inotify and polling, object storage,
the supervisor."""

from nimbus.store.store import Store, Versioned  # noqa: F401

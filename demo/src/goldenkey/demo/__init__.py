"""A simulated day at the Qujiang hall, driven through the services' HTTP APIs as the hall's devices would."""

"""Golden Key Hall's parking service (DESIGN §4 "parking")."""

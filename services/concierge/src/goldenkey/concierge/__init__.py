"""Golden Key Hall's concierge service (DESIGN §4 "concierge")."""

"""Golden Key Hall's queue service (DESIGN §4 "queue")."""

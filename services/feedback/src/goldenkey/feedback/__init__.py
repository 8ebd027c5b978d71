"""Golden Key Hall's feedback service (DESIGN §4 "feedback")."""

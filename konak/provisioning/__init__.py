"""Device enrolment: claim tokens, per-device broker credentials and ACLs, revocation."""

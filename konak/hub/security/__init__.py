"""The hub's security core: roles and the one ``authorize`` decision, tokens, passwords, rate
limits and lock-out, users, password resets and invitations, the audit log and device
enrolment. It raises domain errors (``errors.py``) and never imports HTTP code."""

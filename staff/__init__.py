"""Staff tools for running a class: announcements, the usage overview, the log of failed e-mails.

Its own app (not `accounts`) because none of this is a rule about people or invite codes: it is what staff
see and say. It reads `accounts` and the hub's API; `accounts` imports only `staff.mail`, so that a reset
mail that fails is recorded for staff.
"""

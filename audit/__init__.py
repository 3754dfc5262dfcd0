"""The audit trail: who did what, from where. The ground floor every app records into.

Its model (`OperationLog`) and recorder (`audit.services.record`) sit below every domain app, so a
service anywhere records a change with a plain import. The trail refers to merchants, users and
machines by foreign key only; nothing here imports a domain app's code.
"""

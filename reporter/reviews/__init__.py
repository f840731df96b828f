"""Access reviews, the closed loop: owners' decisions come back from their workbooks
(`workbook`, `commands`), are checked and given effect (`decisions`, pure), kept in the state
database (`reporter/state/decisions.py`), and attested for auditors (`attestation`)."""

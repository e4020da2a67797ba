"""The sections of ``kiteline.yaml``, one module a group of them; ``gateway.config``
is their public face and holds ``Config``, the model of the whole file.

A new section is one model (beside its kin here, or in ``gateway.config``) and one
field of ``Config``; docs/configuration.md documents each of its settings.
"""

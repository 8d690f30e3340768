"""The BlockProofCredentialVault contracts: sources, compiled artifacts and Python helpers.

- ``contracts.artifacts``: ``load_artifact(name)``, ``BATCH_INTERFACE_ID``
- ``contracts.deploy``: ``deploy_vault``, ``configure_institution``, ``has_batch_extension``
- ``contracts.errors``: ``decode_revert``, ``revert_data_from_exception``
"""

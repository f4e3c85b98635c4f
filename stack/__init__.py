"""The operator side of ModelPulse: the ``modelpulse`` CLI (``stack.cli``), the process supervisor
behind ``modelpulse up`` (``stack.supervisor``) and the roles-to-processes table (``stack.topology``).

Nothing here imports Flask: the API is one of the processes this package starts, not a library it uses.
"""

"""The listener role's tool: staying quiet is an action the model must choose explicitly."""


def keep_listening(reason: str = "") -> str:
    """Tell the model to say nothing this turn; the user's thought is not finished."""
    return "Say nothing now. Wait for the user to go on."

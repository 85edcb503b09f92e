"""Results tables beside the paper's numbers, and the checks of which of the paper's orderings reproduce."""

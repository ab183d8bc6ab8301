"""What is judged: the table of checks, their functions, and the history figures they use."""

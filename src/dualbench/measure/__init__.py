"""The measure stage: one run of a scenario, one worker process per slot."""

"""The HTTP edge: parse → call → serialise, nothing else. Errors become wire JSON in `middleware`."""

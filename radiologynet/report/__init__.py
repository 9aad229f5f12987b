"""Tables, figures and reports from a sweep's results folder; model-card results."""

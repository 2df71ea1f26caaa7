"""Feature cards (dashboards): top activations, quantile examples, densities, logit effects,
top input tokens."""

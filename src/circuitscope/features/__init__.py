"""Feature cards (dashboards): top activations, quantile examples, densities, logit effects."""

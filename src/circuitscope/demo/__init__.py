"""`circuitscope demo`: the case studies of "On the Biology of a Large Language Model",
sized to SmolLM2-135M, from a trained transcoder to a report and the page.

suite.py: the prompts and which the model gets right; training_step.py: the demo
transcoder; steps.py: trace, validate, cards, supernodes, comparisons (each skipped when
done); facts.py and report.py: the figures and the report; run.py: all of it in order.
"""

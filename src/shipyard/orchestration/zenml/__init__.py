"""The ZenML pipeline of the training run: one thin ``@step`` per function of ``pipeline.steps`` (in
``steps/``), the wiring (``pipeline.py``), a materializer for the step dataclasses, and the step
parameters (``params.py``). Only ``params`` can be imported without ZenML; ``zenml_runner`` sets up
ZenML's folders before anything here that imports it is loaded."""

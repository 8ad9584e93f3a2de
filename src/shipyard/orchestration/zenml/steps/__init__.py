"""One ZenML step per function of ``shipyard.pipeline.steps``; each only converts its parameters and
calls that function."""

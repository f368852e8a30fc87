"""EgoRecall's user-facing layer: the Gradio app, the CLI, and the service both of them call."""

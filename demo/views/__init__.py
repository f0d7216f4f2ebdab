"""The views: the only modules that import gradio (race logic, tabs and the Blocks wiring)."""

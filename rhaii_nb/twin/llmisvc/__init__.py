"""What KServe's LLMInferenceService controller renders: presets, the PodSpec merge, child objects and
status conditions. ``twin/controllers/llmisvc.py`` applies them to the store."""

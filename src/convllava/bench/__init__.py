"""`convllava bench`: where the time goes (encoder, prefill, generate, train), side by side with transformers'
own LLaVA and a reference of the original ConvLLaVA forward, measured in one process on the same inputs."""

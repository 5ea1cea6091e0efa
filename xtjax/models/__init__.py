"""XLM-R in Flax NNX: the encoder (`xlmr`), task heads (`heads`), and Hugging Face checkpoint
names, files and loading (`convert`, `hf`, `torch_pickle`, `loading`)."""

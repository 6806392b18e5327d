"""OpenAI's protocol: chat completions, Responses, images, audio, models, embeddings."""

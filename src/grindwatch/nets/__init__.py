"""PyTorch networks, kept apart from the code that trains them."""

from grindwatch.nets.conv_autoencoder import ConvAutoencoder

__all__ = ["ConvAutoencoder"]

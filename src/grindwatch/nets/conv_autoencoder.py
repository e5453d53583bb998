"""A 1-D convolutional autoencoder as a plain PyTorch module (no training loop)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvAutoencoder"]


class ConvAutoencoder(nn.Module):
    """Encode windows with strided 1-D convolutions, decode with transposed ones.

    Parameters
    ----------
    n_channels : int
        Input channels.
    length : int
        Samples (or bands) per window; the output is cropped to this length.
    filters, kernel_sizes, strides : sequence of int
        One entry per encoder layer; the decoder mirrors them.
    latent_size : int or None
        Width of a dense bottleneck between encoder and decoder. None keeps the
        network fully convolutional.
    """

    def __init__(
        self,
        n_channels: int,
        length: int,
        filters: list[int],
        kernel_sizes: list[int],
        strides: list[int],
        latent_size: int | None = 16,
    ) -> None:
        super().__init__()
        self.length = length
        encoder: list[nn.Module] = []
        widths = [n_channels, *filters]
        for i, (kernel, stride) in enumerate(zip(kernel_sizes, strides, strict=True)):
            encoder += [
                nn.Conv1d(
                    widths[i], widths[i + 1], kernel, stride, padding=kernel // 2
                ),
                nn.GELU(),
            ]
        self.encoder = nn.Sequential(*encoder)

        with torch.no_grad():
            encoded_length = self.encoder(torch.zeros(1, n_channels, length)).shape[-1]
        self.encoded_shape = (widths[-1], encoded_length)
        if latent_size is None:
            self.bottleneck = nn.Identity()
        else:
            flat = widths[-1] * encoded_length
            self.bottleneck = nn.Sequential(
                nn.Flatten(),
                nn.Linear(flat, latent_size),
                nn.GELU(),
                nn.Linear(latent_size, flat),
                nn.Unflatten(1, self.encoded_shape),
            )

        decoder: list[nn.Module] = []
        layers = list(zip(kernel_sizes, strides, strict=True))[::-1]
        reversed_widths = widths[::-1]
        for i, (kernel, stride) in enumerate(layers):
            last = i == len(layers) - 1
            decoder.append(
                nn.ConvTranspose1d(
                    reversed_widths[i],
                    reversed_widths[i + 1],
                    kernel,
                    stride,
                    padding=kernel // 2,
                    output_padding=stride - 1,
                )
            )
            if not last:
                decoder.append(nn.GELU())
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        decoded = self.decoder(self.bottleneck(self.encoder(x)))
        # With padding kernel // 2 and output_padding stride - 1, each transposed
        # layer returns at least the length its encoder layer took in, so the
        # output is never shorter than the input and cropping is enough.
        return decoded[..., : self.length]

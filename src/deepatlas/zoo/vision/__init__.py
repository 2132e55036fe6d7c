"""Vision: convolutional networks from LeNet-5 to EfficientNet, U-Net, the Vision Transformer and capsules."""

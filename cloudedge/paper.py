"""Numbers reported in Ding et al., "A Cloud-Edge Collaboration Framework for Cognitive
Service" (IEEE Trans. Cloud Computing, 2022), transcribed from the paper's text.

These are the paper's measurements, kept only to print beside ours; nothing here is a
result of this project. tests/test_paper_numbers.py checks the transcription against the
paper's text file when it is available.
"""

LABELED_SIZES = (120, 240, 360, 480, 600, 720, 840, 960, 1080, 1200)

# Table 2: test accuracy (%) on MNIST vs number of training images.
TABLE2_MNIST = {
    "EdgeCNN0-3": (74.36, 82.96, 88.35, 89.04, 90.00, 90.45, 90.68, 91.98, 93.67, 93.46),
    "EdgeCNN1-3": (83.12, 88.97, 89.76, 90.17, 91.97, 94.04, 94.65, 95.31, 95.41, 95.47),
    "EdgeCNN0-5": (83.38, 91.94, 91.12, 93.75, 93.40, 93.61, 95.08, 95.35, 96.40, 96.54),
    "EdgeCNN1-5": (84.39, 92.81, 93.49, 94.14, 95.50, 96.09, 96.40, 96.56, 96.65, 96.81),
    "EdgeCNN0-10": (84.75, 89.91, 93.01, 94.69, 95.04, 95.85, 95.31, 96.11, 94.62, 96.19),
    "EdgeCNN1-10": (85.17, 94.51, 95.14, 95.12, 96.20, 96.42, 96.49, 96.99, 97.05, 97.20),
}

# Table 3: test accuracy (%) on Fashion-MNIST vs number of training images.
TABLE3_FASHION = {
    "EdgeCNN0-3": (58.61, 68.74, 72.01, 74.40, 75.93, 75.98, 76.06, 77.08, 78.01, 78.77),
    "EdgeCNN1-3": (75.77, 78.67, 82.04, 83.39, 84.05, 84.34, 84.46, 85.49, 85.59, 86.00),
    "EdgeCNN0-5": (63.91, 69.34, 77.38, 78.23, 78.73, 78.54, 79.17, 79.69, 80.73, 80.37),
    "EdgeCNN1-5": (78.21, 82.55, 84.15, 84.53, 86.12, 86.26, 86.63, 87.66, 87.80, 88.23),
    "EdgeCNN0-10": (65.66, 71.47, 76.02, 76.14, 77.84, 78.23, 78.55, 80.36, 81.00, 81.22),
    "EdgeCNN1-10": (77.59, 82.61, 84.15, 85.68, 86.55, 86.48, 86.78, 87.64, 88.01, 88.23),
}

# Section 4.3.1: CloudCNN test accuracy (%), 10-crop testing.
CLOUD_ACCURACY = {"mnist": 99.48, "cifar10": 87.80, "fashion_mnist": 93.50}

# Section 4.3.3 (Fig. 9): Fashion-MNIST with all 60,000 training images.
FASHION_FULL = {"EdgeCNN1-3": 93.15, "EdgeCNN1-5": 93.30, "EdgeCNN1-10": 93.09, "CloudCNN": 93.50}

# Section 4.3.4 (Fig. 10): training-time reduction of EdgeCNN1-k vs EdgeCNN0-k (%).
TRAINING_TIME_REDUCTION = {
    ("cifar10", 10): 86.57,
    ("mnist", 10): 45.15,
    ("fashion_mnist", 3): 45.47,
}

# Section 4.2 (Figs. 4-6) and 4.3.5 (Fig. 11): response and inference time reductions (%).
RESPONSE_TIME_REDUCTION = {"lte_60K": 55.08, "wifi": 40.26}
INFERENCE_TIME_REDUCTION = 37.68
FIG11_EDGE3_VS = {"EdgeCNN1-10": 51.87, "EdgeCNN1-5": 23.28}  # at 2,000 test images

"""PNG figures (matplotlib, Agg backend): the data flow, and accuracy vs number of images."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402


def plot_accuracy(result, path, paper=None, title=None):
    """result: a run_experiment dict -> line plot of test accuracy vs training images per edge.

    paper: optional {label: (images, accuracies in %)} drawn dashed for reference.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    colors = {}
    for i, edge in enumerate(result["edges"]):
        xs = [p["n_images"] for p in edge["curve"]]
        ys = [100 * p["accuracy"] for p in edge["curve"]]
        colors[edge["model"]] = f"C{i}"
        ax.plot(xs, ys, marker="o", color=colors[edge["model"]], label=edge["model"])
    if result.get("cloud_acc") is not None:
        ax.axhline(100 * result["cloud_acc"], color="gray", linestyle=":", label="CloudCNN")
    for label, (xs, ys) in (paper or {}).items():
        color = next((c for m, c in colors.items() if label.endswith(m)), None)
        ax.plot(xs, ys, linestyle="--", alpha=0.6, color=color, label=label)
    ax.set_xlabel("training images at the edge (N labeled + cloud-labeled uploads)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or f"{result['dataset']}: EdgeCNN0-{result['depth']} vs EdgeCNN1-{result['depth']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def plot_dataflow(path):
    """The framework's data flow (Fig. 2 of the paper, as this code implements it)."""
    fig, ax = plt.subplots(figsize=(10.0, 3.9), dpi=120)
    ax.set_xlim(0, 120)
    ax.set_ylim(0, 40)
    ax.axis("off")
    boxes = [(1, 15, 15, 10, "users\n(mobile devices)"),
             (27, 9, 27, 22, "edge server\n\nsegment objects\nEdgeCNN answers\nbuffer objects\n"
                             "retrain on N + M\n(m lower layers frozen)"),
             (94, 9, 24, 22, "cloud server\n\nCloudCNN (15 conv)\nlabels objects")]
    for x, y, w, h, text in boxes:
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.6", fc="#eef3fb", ec="#35608f"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)

    def arrow(x0, x1, y, text, color="#333333", below=False):
        ax.add_patch(FancyArrowPatch((x0, y), (x1, y), arrowstyle="-|>", mutation_scale=12, color=color))
        ax.text((x0 + x1) / 2, y + (-1.2 if below else 1.0), text, ha="center", va="top" if below else "bottom",
                fontsize=7.5, color=color)

    arrow(16.8, 26.2, 22, "images")
    arrow(26.2, 16.8, 18, "answers", below=True)
    arrow(93.2, 54.8, 28, "Alg. 1: m lower layers (package, sha256-verified)", color="#8f3535")
    arrow(54.8, 93.2, 20.5, "Alg. 2: segmented objects, only while core load < threshold")
    arrow(93.2, 54.8, 13, "labels (+ softmax for soft labels)", below=True)
    ax.text(60, 2.5, "Alg. 1: EdgeCNN1 = CloudCNN's m lower conv layers (frozen) + a new head, trained on "
                     "N labeled images.\nAlg. 2: the edge retrains on its N images + the M cloud-labeled uploads "
                     "when its trigger fires (every M, or expected gain).",
            ha="center", va="bottom", fontsize=7.5)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path

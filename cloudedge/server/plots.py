"""The measured counterpart of the paper's Figs. 4 and 6 (matplotlib, Agg, PNG)."""
import numpy as np


def plot_response(rows, path, title):
    """Mean response time (RT) and upload time (UT) per image size, edge vs cloud, log scale;
    bars span the 10th..90th percentile of the requests. rows: client rows (errors skipped)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r["error"]]
    sizes = sorted({r["size_k"] for r in ok})
    x = np.arange(len(sizes))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {("cloud", "total_s"): ("RT: performing tasks on the cloud server", "tab:red", "-o"),
              ("cloud", "upload_s"): ("UT: uploading images to the cloud server", "tab:red", "--s"),
              ("edge", "total_s"): ("RT: performing tasks on the edge server", "tab:blue", "-o"),
              ("edge", "upload_s"): ("UT: uploading images to the edge server", "tab:blue", "--s")}
    for (target, column), (label, color, fmt) in styles.items():
        stats = []
        for size in sizes:
            values = np.array([r[column] for r in ok if r["target"] == target and r["size_k"] == size])
            stats.append((values.mean(), *np.percentile(values, [10, 90])) if len(values) else (np.nan,) * 3)
        if all(np.isnan(s[0]) for s in stats):
            continue
        mean, lo, hi = (np.array(v) for v in zip(*stats))
        ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], fmt=fmt, color=color, label=label,
                    capsize=3, markersize=4)
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{s:g}K" for s in sizes])
    ax.set_xlabel("Size of images")
    ax.set_ylabel("Response time vs. upload time (s)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)

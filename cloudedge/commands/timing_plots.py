"""PNG figures of a `cloudedge timing` result (matplotlib, Agg backend).

timing_response_<link>.png   Figs. 4 (lte) and 6 (wifi): response and upload time vs size
timing_execution.png         Fig. 5: execution time vs size, CloudCNN vs EdgeCNN-3
timing_inference_vs_images.png  Fig. 11: inference time vs number of images
timing_break_even.png        cloud / edge response time over WAN rate x image size
"""
import os

import numpy as np

from ..timing import network
from .timing_measure import BREAK_EVEN_WAN_RATES, CLOUD, EDGE, FIG11_MODELS

FIG_NUMBER = {"lte": "Fig. 4", "wifi": "Fig. 6"}


def plot_all(r, directory):
    """Write the figures of result r into directory (created if needed); returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    paths = []
    note = f"{r['config']['preset']} preset, input {tuple(r['config']['input'])}, measured here"

    def save(fig, name):
        path = os.path.join(directory, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    labels = [f"{row['size_k']}K" for row in r["execution"]]
    ticks = list(range(len(labels)))
    for link, rows in r["response"].items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for where, model, style, color in (("cloud", CLOUD, "o", "C0"), ("edge", EDGE, "s", "C1")):
            ax.plot(ticks, [row[where]["total"] for row in rows], style + "-", color=color,
                    label=f"RT: performing tasks on the {where} ({model})")
            ax.plot(ticks, [row[where]["upload"] for row in rows], style + "--", color=color,
                    mfc="none", label=f"UT: uploading images to the {where}")
        ax.set(yscale="log", xticks=ticks, xticklabels=labels, xlabel="Size of images",
               ylabel="Response time vs. upload time (s)")
        ax.set_title(f"{FIG_NUMBER.get(link, 'Figs. 4/6')} ({link}): {note}", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        save(fig, f"timing_response_{link}.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    width = 0.38
    for shift, name in ((-width / 2, CLOUD), (width / 2, EDGE)):
        ax.bar([t + shift for t in ticks], [row[name] for row in r["execution"]], width,
               label=f"Using {name} (preprocessing + inference)")
    ax.set(xticks=ticks, xticklabels=labels, xlabel="Size of images", ylabel="Execution time (s)")
    ax.set_title(f"Fig. 5: batch 1, {note}", fontsize=8)
    ax.legend(fontsize=8)
    save(fig, "timing_execution.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in FIG11_MODELS:
        pts = [(row["images"], row["seconds"]) for row in r["fig11"] if row["model"] == name]
        ax.plot(*zip(*pts), "o-", label=name)
    ax.set(xlabel="Number of test images", ylabel="Inference time (s)")
    ax.set_title(f"Fig. 11: batches of {r['config']['batch']}, {note}", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    save(fig, "timing_inference_vs_images.png")

    _break_even_maps(plt, r, note)
    fig = plt.gcf()
    save(fig, "timing_break_even.png")
    return paths


MAP_SPEEDUPS = (1, 16)                      # rows of the break-even figure
MAP_SIZES = np.logspace(np.log10(16 * network.KiB), np.log10(64 * network.MiB), 41)


def _break_even_maps(plt, r, note):
    """Cloud/edge response-time ratio over (WAN rate, image size), one panel per access
    link and cloud speed-up; the ratio-1 contour is the break-even line."""
    cfg, model = r["config"], r["execution_model"]
    links = {name: network.Link(**link) for name, link in cfg["links"].items()}
    fig, axes = plt.subplots(len(MAP_SPEEDUPS), len(links), squeeze=False,
                             figsize=(4.4 * len(links), 3.6 * len(MAP_SPEEDUPS)))
    edge_exec = network.Execution(model["base_s"][EDGE], model["preprocess_s_per_byte"])
    cloud_base = network.Execution(model["base_s"][CLOUD], model["preprocess_s_per_byte"])
    rates = np.array(BREAK_EVEN_WAN_RATES)
    for row, k in enumerate(MAP_SPEEDUPS):
        cloud_exec = cloud_base.scaled(k)
        for ax, (name, link) in zip(axes[row], links.items()):
            edge = network.edge_path(link)
            ratio = np.array([[
                network.response_time(network.cloud_path(link, network.wan_link(w, cfg["wan"]["rtt"])),
                                      s, cloud_exec).total
                / network.response_time(edge, s, edge_exec).total for w in rates] for s in MAP_SIZES])
            mesh = ax.pcolormesh(rates / network.KiB, MAP_SIZES / network.KiB, np.log2(ratio),
                                 cmap="RdBu_r", vmin=-3, vmax=3, shading="auto")
            if ratio.min() < 1 < ratio.max():
                ax.contour(rates / network.KiB, MAP_SIZES / network.KiB, ratio, levels=[1.0],
                           colors="k", linewidths=1.5)
            ax.axvline(cfg["wan"]["up"] / network.KiB, color="k", ls=":", lw=1)
            ax.set(xscale="log", yscale="log", xlabel="WAN rate (KiB/s)", ylabel="image size (K)")
            wins = "cloud first inside the black line" if ratio.min() < 1 else "edge first everywhere"
            ax.set_title(f"{name}, cloud {k}x this machine: {wins}", fontsize=8)
            fig.colorbar(mesh, ax=ax, label="log2(cloud RT / edge RT)")
    fig.suptitle(f"Break-even: blue = cloud answers first; dotted = default WAN rate; "
                 f"WAN rtt {cfg['wan']['rtt'] * 1000:.0f} ms; {note}", fontsize=8)

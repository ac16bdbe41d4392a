"""MNIST: the PixelCNN models of Table 1's latent-20 row, Table 3's weak MLP models and the classification study
with Figure 2 at latent 50 (claims C3, C5, C6)."""

from skipvae.experiments.declaration import (CPU_PAPER_COMMAND, FORCE, SA_SEEDS, Experiment, Param, Sweep, block,
                                             first_only, seeds_param, with_sa_seeds)

PARAMS = (
    seeds_param([0, 1, 2]),
    SA_SEEDS,
    FORCE,
    Param("models", "models", ["vae", "skip-vae", "sa-vae", "skip-sa-vae"],
          "models with the gated PixelCNN decoder at the profile's latent dimension (paper: 20)"),
    Param("mlp_models", "models", ["vae", "skip-vae"], "models with the weak MLP encoder and decoder (Table 3)"),
    Param("mlp_layers", "positive_ints", [2, 3, 4], "MLP decoder layers (Table 3: 2, 3, 4)"),
    Param("clf_models", "models", ["vae", "skip-vae"],
          "PixelCNN models at `clf_latent_dim` for the classification study and the t-SNE"),
    Param("clf_latent_dim", "positive_int", 50, "latent dimension of the classification study and Figure 2 "
          "(paper: 50)"),
    Param("tsne_points", "positive_int", 5000, "test images embedded by t-SNE (its cost grows as N log N)"),
    Param("n_images", "positive_int", 8, "samples and reconstructions per model (PixelCNN sampling: 784 decoder "
          "passes each)"),
)


def split_sa(models: list) -> tuple[list, list]:
    """(amortized models, semi-amortized models) of `models`."""
    return [m for m in models if not m.endswith("sa-vae")], [m for m in models if m.endswith("sa-vae")]


def reduce(profile: str, p: dict) -> dict:
    """The SA models' seeds (with_sa_seeds); the smoke profile only checks that the notebook runs: one seed per model,
    one MLP depth."""
    p = with_sa_seeds(profile, p)
    return first_only(p, "seeds", "sa_seeds", "mlp_layers") if profile == "smoke" else p


def blocks(profile: str, p: dict) -> list:
    """pixelcnn (the main table), mlp (Table 3), classification (the study at latent `clf_latent_dim`)."""
    base = {"dataset": "mnist", "profile": profile}
    amortized, semi = split_sa(p["models"])
    return [block("pixelcnn", base | {"arch": "pixelcnn"}, {"model": amortized, "seed": p["seeds"]},
                  {"model": semi, "seed": p["sa_seeds"]}),
            block("mlp", base | {"arch": "mlp"}, {"dec_layers": p["mlp_layers"], "seed": p["seeds"],
                                                  "model": p["mlp_models"]}),
            block("classification", base | {"arch": "pixelcnn", "latent_dim": p["clf_latent_dim"]},
                  {"model": p["clf_models"], "seed": p["seeds"]})]


EXPERIMENT = Experiment(
    "mnist", "MNIST", ("arch", "latent_dim", "dec_layers", "model"), params=PARAMS, make_blocks=blocks,
    reduce=reduce,
    sweeps=(
        Sweep("cpu_table3_mlp", "cpu", "Table 3 at the cpu profile: the weak MLP model on MNIST (latent 50, "
              "encoder and decoder 2 x 512), 2, 3 and 4 decoder layers, VAE and Skip-VAE, seeds 0-2; two "
              "single-thread lanes.", blocks=("mlp",), order=("seed",)),
        Sweep("paper_table3_mlp", "paper", "Table 3 at the paper's own scale (issue 26): the weak MLP model, 100 "
              "epochs on the 50k training images, batch 50, Adam 1e-3, clip 5, fp32, the compiled step (issue "
              "25); test metrics and the IW-NLL (K = 500) on the whole 10k test set. The 2-layer cell's three seeds "
              "of both models first, so that one cell can be judged before the next starts.", blocks=("mlp",),
              command=CPU_PAPER_COMMAND),
        Sweep("mnist_paper", "paper", "The 9-layer PixelCNN VAE and Skip-VAE of Table 1 (latent 20) at the "
              "paper's settings, seeds 0-2 (a GPU; on Slurm: --executor slurm --slurm slurm_partition=gpu).",
              blocks=("pixelcnn",), params={"models": ["vae", "skip-vae"]}, command=""),
        Sweep("cpu_sa_mnist", "cpu", "SA-VAE and Skip-SA-VAE on MNIST at the cpu profile, seed 0 (too dear for "
              "the cpu budget: optional).", blocks=("pixelcnn",), params={"models": ["sa-vae", "skip-sa-vae"]}),
        Sweep("smoke", "smoke", "The smoke profile's VAE and Skip-VAE (seconds): a check that sweeps run.",
              blocks=("pixelcnn",), params={"models": ["vae", "skip-vae"]}, command="--dry-run"),
    ),
)


# ------------------------------------------------------------------------- the derived metric: Figure 2's t-SNE

def tsne_record_scores(points) -> dict:
    """{tsne_silhouette, tsne_knn5_accuracy} of a t-SNE frame (columns x, y, label; skipvae.metrics.tsne_scores),
    rounded as the records store them."""
    from skipvae.metrics import tsne_scores as scores

    found = scores(points[["x", "y"]].to_numpy(), points["label"].to_numpy(), seed=0)
    return {k: round(v, 6) for k, v in found.items()}


def run_tsne(cfg, points: int, saved=None, trained=None):
    """The t-SNE of run `cfg` (rows run, seed, x, y, label): `saved` (its earlier rows) when there are any, else
    the 2-D embedding of the posterior means of `points` test images of `trained` ((data, model) of the run's
    checkpoint: skipvae.runner.load_trained), perplexity 30 or less for few points; None when neither is given."""
    import pandas as pd

    if saved is not None and len(saved):
        print(f"{cfg.run_name()}: reusing its saved t-SNE coordinates")
        return saved
    if trained is None:
        print(f"{cfg.run_name()}: no checkpoint and no saved t-SNE on this machine; skipped.")
        return None
    from skipvae.metrics import posterior_means, tsne_embedding

    data, net = trained
    means, labels = posterior_means(net, data, "test", limit=points)
    xy = tsne_embedding(means, seed=0, perplexity=min(30.0, (len(means) - 1) / 3), n_threads=1)
    return pd.DataFrame({"run": cfg.run_name(), "seed": cfg.seed, "x": xy[:, 0], "y": xy[:, 1],
                         "label": labels.numpy()})

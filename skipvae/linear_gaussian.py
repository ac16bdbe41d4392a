"""Linear-Gaussian latent variable models: everything in closed form.

1. `LinearGaussian`: z ~ N(0, I_D), x = W z + b + eps, eps ~ N(0, diag(noise_var)). It implements the model
   interface of skipvae (`encode`, `log_likelihood`, `refine`), so the metrics of `skipvae.metrics` can be
   checked against exact answers: log p(x), the exact posterior p(z|x) and I(x; z).
2. `deep_linear_mi`: the mutual information between z and the output x of a deep chain of noisy linear layers,
   with or without generative skip connections from z into every layer (the setting of the paper's
   proposition, where everything is Gaussian and I(x; z) has a closed form).
3. Theorem 1 of the paper, I_p^skip(x; z) >= I_p^vae(x; z) (I_p: under the generative model z ~ p(z),
   x ~ p(x|z); the VAE is the skip model with its skips taken out), in one dimension and exactly:
   `scalar_mi_ratios`, `skip_failure_interval`, `proof_chain`, and `aligned_skip_weights` for the existence reading.

What holds in that linear-Gaussian setting (tests/test_theory.py checks each point):
- Without skips the chain is Markov, z -> h_1 -> ... -> x, so I(x; z) never grows with depth
  (data-processing inequality; exact, for every weight draw).
- "Adding skips to a given model never lowers I_p(x; z)" (the for-all reading of Theorem 1) is false. Smallest
  counterexample: z -> h1 -> x with a1 = a2 = 1, skip b = -1, h1 = z, noise variance 1 on x: I_vae = ½ log 2,
  I_skip = 0. In 1-D every skip b strictly between -2 a1 a2 and 0 lowers I_p, and random weak skips lower it
  in a fraction of random deep chains (notebooks/theory.ipynb counts them). The proof sketch's link
  I_skip(x; h1) >= I_vae(x; h1) is the one that fails (the two models share h1 = f0(z), not p(x | h1)).
- "For every plain model some skip model has at least its I_p" (the existence reading) is true: skips aligned
  with the chain's gain never lower I_p, and every skip strength s >= s0 = `skip_dominance_threshold(A, B, noise)`
  does not either (s0 = 0 for aligned skips; in one dimension 0 < s < s0 always lowers I).
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import Tensor, nn

from skipvae.errors import ConfigError

LOG_2PI = math.log(2 * math.pi)


def gaussian_channel_mi(gain: Tensor, noise_cov: Tensor) -> float:
    """I(x; z) in nats for x = gain @ z + n, z ~ N(0, I_D), n ~ N(0, noise_cov) independent of z.

        I(x; z) = H(x) - H(x|z) = 0.5 logdet(gain gain^T + noise_cov) - 0.5 logdet(noise_cov)
                = 0.5 logdet(I_D + gain^T noise_cov^-1 gain)   (the D x D form computed here).
    """
    gain, noise_cov = gain.double(), noise_cov.double()
    if gain.dim() != 2 or noise_cov.shape != (gain.shape[0], gain.shape[0]):
        raise ConfigError(f"gain must be [P, D] and noise_cov [P, P]; got {tuple(gain.shape)} and "
                          f"{tuple(noise_cov.shape)}.")
    snr = gain.T @ torch.linalg.solve(noise_cov, gain)
    eye = torch.eye(gain.shape[1], dtype=gain.dtype, device=gain.device)
    return 0.5 * torch.linalg.slogdet(eye + 0.5 * (snr + snr.T)).logabsdet.item()


class LinearGaussian(nn.Module):
    """z ~ N(0, I_D), x | z ~ N(W z + b, diag(noise_var)), with a Gaussian proposal q(z|x) for the metrics.

    Closed forms (Sigma = diag(noise_var)):
        p(x)   = N(x; b, W W^T + Sigma)
        p(z|x) = N(z; S W^T Sigma^-1 (x - b), S),  S = (I + W^T Sigma^-1 W)^-1
        I(x;z) = 0.5 logdet(I + W^T Sigma^-1 W)
    `encode` returns the exact posterior, moved by `proposal_shift` (added to the mean) and
    `proposal_logvar_shift` (added to the log-variance), so a test can choose an exact or a worse proposal.
    The exact posterior is a diagonal Gaussian, as the metrics need, when the columns of W are orthogonal
    in the metric Sigma^-1; `LinearGaussian.random` builds such a W.
    """

    def __init__(self, W: Tensor, b: Tensor, noise_var: Tensor | float, proposal_shift: float = 0.0,
                 proposal_logvar_shift: float = 0.0):
        super().__init__()
        if W.dim() != 2:
            raise ConfigError(f"W must be a [data_dim, latent_dim] matrix, got shape {tuple(W.shape)}.")
        noise_var = torch.as_tensor(noise_var, dtype=W.dtype).expand(W.shape[0]).clone()
        if b.shape != (W.shape[0],) or bool((noise_var <= 0).any()):
            raise ConfigError(f"b must have shape ({W.shape[0]},) and noise_var be positive; got b of shape "
                              f"{tuple(b.shape)} and min noise_var {noise_var.min().item():.3g}.")
        self.register_buffer("W", W)
        self.register_buffer("b", b.to(W.dtype))
        self.register_buffer("noise_var", noise_var)
        self.proposal_shift = proposal_shift
        self.proposal_logvar_shift = proposal_logvar_shift

    @classmethod
    def random(cls, data_dim: int, latent_dim: int, scales: Tensor | None = None, noise_std: float = 0.5,
               seed: int = 0, dtype: torch.dtype = torch.float64, **proposal) -> "LinearGaussian":
        """A model with a diagonal exact posterior: W = Sigma^1/2 U diag(scales), U with orthonormal columns.

        Then W^T Sigma^-1 W = diag(scales^2), the posterior variances are 1 / (1 + scales^2) and
        I(x; z) = 0.5 sum_d log(1 + scales_d^2). Default scales: evenly spaced from 0.5 to 3.
        """
        if data_dim < latent_dim:
            raise ConfigError(f"data_dim={data_dim} < latent_dim={latent_dim}: a diagonal exact posterior "
                              f"needs data_dim >= latent_dim.")
        g = torch.Generator().manual_seed(seed)
        scales = torch.linspace(0.5, 3.0, latent_dim, dtype=dtype) if scales is None else scales.to(dtype)
        U, _ = torch.linalg.qr(torch.randn(data_dim, latent_dim, generator=g, dtype=dtype))
        noise_var = (noise_std * (0.5 + torch.rand(data_dim, generator=g, dtype=dtype))) ** 2
        W = noise_var.sqrt()[:, None] * U * scales[None, :]
        b = torch.randn(data_dim, generator=g, dtype=dtype)
        return cls(W, b, noise_var, **proposal)

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(x [n, P], z [n, D]) drawn from p(z) p(x|z)."""
        like = dict(generator=generator, dtype=self.W.dtype, device=self.W.device)
        z = torch.randn(n, self.latent_dim, **like)
        eps = torch.randn(n, self.W.shape[0], **like)
        return z @ self.W.T + self.b + eps * self.noise_var.sqrt(), z

    def log_marginal(self, x: Tensor) -> Tensor:
        """log p(x) = log N(x; b, W W^T + Sigma), [B]."""
        cov = self.W @ self.W.T + torch.diag(self.noise_var)
        return torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x)

    def posterior_precision(self) -> Tensor:
        """S^-1 = I + W^T Sigma^-1 W, [D, D]."""
        eye = torch.eye(self.latent_dim, dtype=self.W.dtype, device=self.W.device)
        return eye + self.W.T @ (self.W / self.noise_var[:, None])

    def exact_posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of p(z|x), each [B, D]; raises ConfigError when p(z|x) is not diagonal."""
        precision = self.posterior_precision()
        off_diagonal = precision - torch.diag(torch.diagonal(precision))
        if off_diagonal.abs().max() > 1e-8 * precision.abs().max():
            raise ConfigError("the exact posterior of this W has correlated dimensions, so it is no diagonal "
                              "Gaussian; build W with LinearGaussian.random (columns orthogonal in the noise "
                              "metric) to compare with diagonal-Gaussian metrics.")
        var = 1.0 / torch.diagonal(precision)
        mean = ((x - self.b) / self.noise_var) @ self.W * var
        return mean, var.log().expand_as(mean)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The proposal q(z|x): the exact posterior moved by the proposal shifts."""
        mean, logvar = self.exact_posterior(x)
        return mean + self.proposal_shift, logvar + self.proposal_logvar_shift

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = sum_p log N(x_p; (W z + b)_p, noise_var_p), [B]."""
        resid = x - z.to(self.W.dtype) @ self.W.T - self.b
        return -0.5 * (resid ** 2 / self.noise_var + self.noise_var.log() + LOG_2PI).sum(-1)

    def refine(self, x: Tensor, mu: Tensor, logvar: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """No refinement: returns its inputs (the model is not semi-amortized)."""
        return mu, logvar

    def mutual_information(self) -> float:
        """I(x; z) = 0.5 logdet(I + W^T Sigma^-1 W) in nats."""
        return gaussian_channel_mi(self.W, torch.diag(self.noise_var))


# ---------------------------------------------------------------------------------------------------------
# Deep linear-Gaussian decoders, with and without generative skip connections
# ---------------------------------------------------------------------------------------------------------

def random_deep_linear_weights(depth: int, dim: int, seed: int = 0) -> tuple[list[Tensor], list[Tensor]]:
    """Layer weights A_1..A_{depth+1} and skip weights B_2..B_{depth+1}, entries N(0, 1/dim).

    Drawn layer by layer from one generator, so the weights of a chain of depth L are the first layers of
    the chain of depth L+1 with the same seed (what the data-processing comparison across depths needs).
    `B[0]` is a zero matrix: layer 1 receives z through A_1 in both models.
    """
    if not isinstance(depth, int) or depth < 0 or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"depth={depth!r} must be an integer >= 0 and dim={dim!r} an integer >= 1.")
    g = torch.Generator().manual_seed(seed)
    A, B = [], []
    for layer in range(depth + 1):
        A.append(torch.randn(dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim))
        skip = torch.randn(dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
        B.append(torch.zeros_like(skip) if layer == 0 else skip)
    return A, B


def deep_linear_channel(A: list[Tensor], B: list[Tensor], skip_strength: float, noise: float) -> tuple[Tensor, Tensor]:
    """The Gaussian channel z -> x of the chain h_0 = z, h_l = A_l h_{l-1} + s B_l z + eps_l, x = h_{L+1}.

    eps_l ~ N(0, noise^2 I) independent. Every h_l is linear-Gaussian in z, h_l = M_l z + n_l, with
        M_l = A_l M_{l-1} + s B_l,               M_0 = I
        C_l = A_l C_{l-1} A_l^T + noise^2 I,      C_0 = 0        (C_l = Cov(n_l); it does not depend on s)
    Returns (gain M_{L+1}, noise covariance C_{L+1}).
    """
    if noise <= 0:
        raise ConfigError(f"noise={noise} must be positive: a noise-free chain has infinite I(x; z).")
    dim = A[0].shape[1]
    gain = torch.eye(dim, dtype=torch.float64)
    cov = torch.zeros(dim, dim, dtype=torch.float64)
    for A_l, B_l in zip(A, B):
        gain = A_l @ gain + skip_strength * B_l
        cov = A_l @ cov @ A_l.T + noise ** 2 * torch.eye(A_l.shape[0], dtype=torch.float64)
    return gain, cov


def deep_linear_mi(depth: int, dim: int, skip_strength: float = 0.0, noise: float = 1.0, seed: int = 0) -> float:
    """I(x; z) in nats of a deep linear-Gaussian decoder with `depth` hidden layers.

        z ~ N(0, I_dim),  h_0 = z,  h_l = A_l h_{l-1} + s B_l z + eps_l  (l = 1..depth+1),  x = h_{depth+1},
        eps_l ~ N(0, noise^2 I),  B_1 = 0,  s = skip_strength (s = 0: no skips, a Markov chain z -> h_1 -> ... -> x).
    x is jointly Gaussian with z, x = M z + n, so
        I(x; z) = 0.5 logdet(Cov x) - 0.5 logdet(Cov x|z) = 0.5 logdet(M M^T + C) - 0.5 logdet(C)
    (M, C from `deep_linear_channel`; weights from `random_deep_linear_weights(depth, dim, seed)`).
    """
    A, B = random_deep_linear_weights(depth, dim, seed)
    return gaussian_channel_mi(*deep_linear_channel(A, B, skip_strength, noise))


def skip_dominance_threshold(A: list[Tensor], B: list[Tensor], noise: float) -> float:
    """The smallest s0 >= 0 such that every skip strength s >= s0 gives I_skip(x; z) >= I_no-skip(x; z).

    The noise covariance C of x given z does not depend on s, and the gain is affine in s:
    M(s) = P + s Q (P: the chain without skips). With X = Q^T C^-1 P + P^T C^-1 Q and Y = Q^T C^-1 Q,
        M(s)^T C^-1 M(s) - P^T C^-1 P = s (X + s Y),
    which is positive semi-definite, and so I(x; z) = 0.5 logdet(I + M^T C^-1 M) is at least the
    no-skip value (and non-decreasing in s), as soon as X + s Y >= 0, i.e. for
        s >= s0 = max(0, lambda_max(-Y^-1/2 X Y^-1/2)).
    s0 = 0 when X >= 0 (skips aligned with the signal: then skips of any strength help); s0 = inf when Y
    is singular and X is not PSD. This is a sufficient condition: below s0 skips may still help, or not.
    """
    P, C = deep_linear_channel(A, B, 0.0, noise)
    Q = deep_linear_channel(A, B, 1.0, noise)[0] - P
    X = Q.T @ torch.linalg.solve(C, P)
    X = X + X.T
    Y = Q.T @ torch.linalg.solve(C, Q)
    Y = 0.5 * (Y + Y.T)
    scale = max(torch.linalg.matrix_norm(X, 2).item(), torch.linalg.matrix_norm(Y, 2).item(), 1e-300)
    if torch.linalg.eigvalsh(X).min() >= -1e-12 * scale:
        return 0.0
    evals, evecs = torch.linalg.eigh(Y)
    if evals.min() <= 1e-12 * scale:
        return math.inf
    y_inv_half = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    return max(0.0, torch.linalg.eigvalsh(-y_inv_half @ X @ y_inv_half).max().item())


# ---------------------------------------------------------------------------------------------------------
# Theorem 1 of the paper in one dimension: exact counterexample, the proof sketch's chain, the existence reading
# ---------------------------------------------------------------------------------------------------------

def scalar_skip_moments(a1, a2, b, var_h, var_x) -> dict:
    """Second moments of (z, h1, x) in the 1-D model with one hidden layer and a skip z -> x:

        z ~ N(0, 1),  h1 = a1 z + e_h,  x = a2 h1 + b z + e_x,  e_h ~ N(0, var_h),  e_x ~ N(0, var_x),
        Var h1 = a1^2 + var_h,  g = a2 a1 + b,  Var x = g^2 + a2^2 var_h + var_x,
        Cov(z, h1) = a1,  Cov(z, x) = g,  Cov(h1, x) = a1 g + a2 var_h.

    var_h = 0 is the paper's deterministic hidden layer h1 = f0(z) (noise only in p(x | eta)); b = 0 is the
    plain VAE, the same model with its skip taken out. Exact (Fractions) when every argument is an int or Fraction.
    """
    if var_x <= 0 or var_h < 0:
        raise ConfigError(f"var_x={var_x} must be positive and var_h={var_h} non-negative.")
    a1, a2, b, var_h, var_x = (Fraction(v) if isinstance(v, int) else v for v in (a1, a2, b, var_h, var_x))
    g = a2 * a1 + b
    return {"var_z": 1, "var_h": a1 * a1 + var_h, "var_x": g * g + a2 * a2 * var_h + var_x,
            "cov_zh": a1, "cov_zx": g, "cov_hx": a1 * g + a2 * var_h}


def mi_ratio(var_u, var_v, cov):
    """r with I(u; v) = 0.5 log r for jointly Gaussian scalars: I = -0.5 log(1 - rho^2), so
    r = Var u Var v / (Var u Var v - Cov(u, v)^2) (exact for Fractions; inf when u, v are deterministically tied)."""
    det = var_u * var_v - cov * cov
    return math.inf if det == 0 else var_u * var_v / det


def scalar_mi_ratios(a1, a2, b, var_h, var_x) -> dict:
    """{'x;z', 'x;h1'}: the ratios r (I = 0.5 log r) of I_p(x; z) and I_p(x; h1) under the generative model.
    I_p(x; z) = 0.5 log(1 + g^2 / N), g = a1 a2 + b, N = a2^2 var_h + var_x (the noise of x given z)."""
    m = scalar_skip_moments(a1, a2, b, var_h, var_x)
    return {"x;z": mi_ratio(m["var_x"], m["var_z"], m["cov_zx"]), "x;h1": mi_ratio(m["var_x"], m["var_h"], m["cov_hx"])}


def nats(ratio) -> float:
    """0.5 log r in nats (inf for r = inf)."""
    return math.inf if ratio == math.inf else 0.5 * math.log(ratio)


def half_log_text(ratio) -> str:
    """An exact mutual information as text: '0' for r = 1, else '½ log(r)' (r a Fraction or int prints exactly)."""
    if ratio == 1 or ratio == math.inf:
        return "0" if ratio == 1 else "∞"
    return f"½ log({ratio:.6g})" if isinstance(ratio, float) else f"½ log({ratio})"


def skip_failure_interval(a1, a2) -> tuple | None:
    """The skip weights b with I_skip(x; z) < I_vae(x; z) in the 1-D model: the open interval between -2 a1 a2 and 0.

    The noise of x given z, N = a2^2 var_h + var_x, does not depend on b, so I_skip < I_vae iff
    (a1 a2 + b)^2 < (a1 a2)^2 iff b lies strictly between -2 a1 a2 and 0 (whatever the noise); b = -a1 a2 gives
    I_skip = 0. None when a1 a2 = 0 (I_vae = 0: no skip can lower it). With b = s beta: 0 < s < -2 a1 a2 / beta.
    """
    g = a1 * a2
    return None if g == 0 else (min(0 * g, -2 * g), max(0 * g, -2 * g))


PROOF_LINKS = (
    ("I_skip(x; z)", "I_skip(x; h1)", "data-processing inequality in the skip model"),
    ("I_skip(x; h1)", "I_vae(x; h1)", "the passage from the skip model to the plain model"),
    ("I_vae(x; h1)", "I_vae(x; z)", "data-processing inequality in the plain model, z -> h1 -> x"),
)


def proof_chain(a1, a2, b, var_h, var_x) -> dict:
    """Every quantity of the paper's proof sketch, I_skip(x; z) >= I_skip(x; h1) >= I_vae(x; h1) >= I_vae(x; z),
    in closed form (`scalar_mi_ratios`, I_p under the generative model), and which links hold.

    Returns {'values': {name: nats}, 'exact': {name: '½ log(r)'}, 'links': [{lhs, rhs, step, holds, ...}],
    'broken': [the 1-based numbers of the links that fail], 'conclusion_holds': I_skip(x; z) >= I_vae(x; z)}.
    Link 1 needs x independent of h1 given z, true when h1 = f0(z) is deterministic (var_h = 0, the paper's
    networks), false for a noisy hidden layer with a skip; link 3 holds always (z -> h1 -> x is Markov).
    """
    skip, vae = scalar_mi_ratios(a1, a2, b, var_h, var_x), scalar_mi_ratios(a1, a2, 0 * b, var_h, var_x)
    ratios = {"I_skip(x; z)": skip["x;z"], "I_skip(x; h1)": skip["x;h1"], "I_vae(x; h1)": vae["x;h1"],
              "I_vae(x; z)": vae["x;z"]}
    links = [{"link": i + 1, "lhs": lhs, "rhs": rhs, "step": step, "lhs_nats": nats(ratios[lhs]),
              "rhs_nats": nats(ratios[rhs]), "holds": _at_least(ratios[lhs], ratios[rhs])}
             for i, (lhs, rhs, step) in enumerate(PROOF_LINKS)]
    return {"values": {k: nats(r) for k, r in ratios.items()},
            "exact": {k: half_log_text(r) for k, r in ratios.items()},
            "links": links, "broken": [link["link"] for link in links if not link["holds"]],
            "conclusion_holds": _at_least(ratios["I_skip(x; z)"], ratios["I_vae(x; z)"])}


def _at_least(lhs, rhs) -> bool:
    """0.5 log lhs >= 0.5 log rhs: exact for Fractions, with 1e-12 nats of slack for float round-off."""
    if isinstance(lhs, Fraction) and isinstance(rhs, Fraction):
        return bool(lhs >= rhs)
    return bool(nats(lhs) >= nats(rhs) - 1e-12)


def aligned_skip_weights(A: list[Tensor], c: float = 1.0) -> list[Tensor]:
    """Skip weights that can only add information: B_{L+1} = c P into the output layer, P = A_{L+1} ... A_1 (the
    plain chain's gain), every other B_l = 0. Then M = (1 + c) P, the noise C is unchanged, and

        M^T C^-1 M = (1 + c)^2 P^T C^-1 P >= P^T C^-1 P,  so  I_skip(x; z) >= I_vae(x; z) for every c >= 0

    (strictly when P != 0 and c > 0), and `skip_dominance_threshold` of these weights is 0: the existence reading
    of Theorem 1 (for every plain model some skip model has at least its mutual information).
    """
    if len(A) < 2 or c < 0:
        raise ConfigError(f"aligned skips need at least one hidden layer (got {len(A) - 1}) and c={c} >= 0.")
    P = torch.eye(A[0].shape[1], dtype=torch.float64)
    for A_l in A:
        P = A_l @ P
    return [torch.zeros_like(A_l) for A_l in A[:-1]] + [c * P]

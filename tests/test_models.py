"""Tests of skipvae.models: wiring against a plain re-statement of the official layers, autoregressive masking,
skip connections, likelihoods, SA-VAE refinement and its end-to-end gradient, and every error path."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from skipvae.config import make_config
from skipvae.errors import ConfigError, DataError
from skipvae.models import VAE, build_model, kl_to_prior, reparameterize
from skipvae.models.lstm import LSTMDecoder
from skipvae.models.ops import conv2d, gate, pad2d
from skipvae.models.pixelcnn import GatedMaskedConv2d, PixelCNNDecoder
from skipvae.models.savae import clip_by_norm, svi_refine
from skipvae.train import cpu_has_bf16

VOCAB = 23


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = dict(latent_dim=3, enc_channels=4, dec_layers=2, dec_channels=4, mlp_hidden=8, emb_dim=6, enc_hidden=5,
            dec_hidden=7, svi_steps=3)


def tiny_cfg(model="vae", arch="pixelcnn", **overrides):
    dataset = "yahoo" if arch == "lstm" else "mnist"
    return make_config(dataset, model, "smoke", arch=arch, **{**TINY, **overrides})


def tiny_model(model="vae", arch="pixelcnn", seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model(tiny_cfg(model, arch, **overrides), vocab_size=VOCAB if arch == "lstm" else None)


def images(b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((b, 1, 28, 28), 0.3), generator=g)


def sentences(seed=1):
    """<s> w.. </s> <pad>..: rows of 5, 3 and 1 word(s)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(3, 7, dtype=torch.long)
    for row, n in enumerate((5, 3, 1)):
        x[row, 0] = 1
        x[row, 1:n + 1] = torch.randint(3, VOCAB, (n,), generator=g)
        x[row, n + 1] = 2
    return x


# ---------------------------------------------------------------------------------------------------------
# The official gated PixelCNN, re-stated plainly (explicit pads and crops, yoonkim/skip-vae models_img_skip.py)
# ---------------------------------------------------------------------------------------------------------

def reference_layer(layer: GatedMaskedConv2d, v, h):
    p, C = layer.pad, layer.channels
    v_out = F.conv2d(F.pad(v, (p, p, p, 0)), layer.v_conv.weight, layer.v_conv.bias)
    v_out = F.pad(v_out, (0, 0, 1, 0))[:, :, :-1, :]
    v_new = torch.tanh(v_out[:, :C]) * torch.sigmoid(v_out[:, C:])
    vh = F.conv2d(v_out, layer.vh_conv.weight, layer.vh_conv.bias)
    h_out = F.conv2d(F.pad(h, (p, 0, 0, 0)), layer.h_conv.weight, layer.h_conv.bias)
    if layer.first:  # mask A
        h_out = F.pad(h_out, (1, 0, 0, 0))[:, :, :, :-1]
    h_out = h_out + vh
    h_out = torch.tanh(h_out[:, :C]) * torch.sigmoid(h_out[:, C:])
    h_new = F.conv2d(h_out, layer.h_out.weight, layer.h_out.bias)
    if not layer.first:  # mask B: residual
        h_new = h_new + F.conv2d(h, layer.h_res.weight, layer.h_res.bias)
    return v_new, h_new


def reference_logits(dec: PixelCNNDecoder, x, z):
    weights = dec.z_map_weights()
    biases = dec.z_maps.bias.split(784)
    z_map = [F.linear(z, w, b).view(-1, 1, 28, 28) for w, b in zip(weights, biases)]
    v = h = x
    for i, layer in enumerate(dec.layers):
        if i == 0 or dec.skip:
            v, h = torch.cat([v, z_map[i]], 1), torch.cat([h, z_map[i]], 1)
        v, h = reference_layer(layer, v, h)
    if dec.skip:
        h = torch.cat([h, z_map[-1]], 1)
    return F.conv2d(h, dec.out_conv.weight, dec.out_conv.bias)


@pytest.mark.parametrize("skip", [False, True])
def test_pixelcnn_matches_the_official_wiring(skip):
    torch.manual_seed(0)
    dec = PixelCNNDecoder(latent_dim=3, channels=4, kernels=[3, 5, 3], skip=skip).double()
    for p in dec.parameters():  # non-zero biases everywhere, so that a bias in the wrong place shows
        torch.nn.init.uniform_(p, -0.5, 0.5)
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 3, dtype=torch.float64)
    ours, ref = dec.logits(x, z), reference_logits(dec, x, z)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad((ours * g).sum(), [x, *dec.parameters()])
    grads_ref = torch.autograd.grad((ref * g).sum(), [x, *dec.parameters()])
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_gate_backward_matches_autograd():
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    z_map = torch.randn(2, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    out = gate(x, z_map)
    ref = torch.cat([torch.tanh(x[:, :3]) * torch.sigmoid(x[:, 3:]), z_map], 1)
    torch.testing.assert_close(out, ref)
    assert torch.autograd.gradcheck(lambda a, m: gate(a, m), (x, z_map))
    assert torch.autograd.gradcheck(lambda a: gate(a), (x,))
    assert torch.autograd.gradgradcheck(lambda a, m: gate(a, m), (x, z_map))  # SA-VAE differentiates twice
    assert torch.autograd.gradgradcheck(lambda a: gate(a), (x,))


@pytest.mark.parametrize("pads", [(1, 0, 0, 0), (0, -1, 2, -3), (-2, 3, -1, 1), (0, 0, 1, -2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pad2d_matches_f_pad(pads, channels_last):
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    out = pad2d(x, *pads)
    torch.testing.assert_close(out, F.pad(x, pads), rtol=0, atol=0)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert torch.autograd.gradcheck(lambda a: pad2d(a, *pads), (x,))
    assert torch.autograd.gradgradcheck(lambda a: pad2d(a, *pads) ** 2, (x,))


@pytest.mark.parametrize("kernel, padding", [((2, 3), (1, 1)), ((1, 2), (0, 0)), ((1, 1), (0, 0))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv2d_first_and_second_derivatives(kernel, padding, channels_last):
    """conv2d(x, conv) = F.conv2d, and its hand-written first and second derivatives match autograd's."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, kernel, padding=padding).double()
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    if channels_last:
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    torch.testing.assert_close(conv2d(x, conv), conv(x))
    params = (x, conv.weight, conv.bias)
    f = lambda a, w, b: conv2d(torch.tanh(a), type("C", (), {"weight": w, "bias": b, "padding": padding})) ** 2  # noqa
    assert torch.autograd.gradcheck(f, params)
    assert torch.autograd.gradgradcheck(f, params)
    # The SA-VAE pattern: a gradient w.r.t. the input, differentiated w.r.t. input and weights.
    g_ours, = torch.autograd.grad(conv2d(x, conv).sin().sum(), x, create_graph=True)
    g_ref, = torch.autograd.grad(conv(x).sin().sum(), x, create_graph=True)
    torch.testing.assert_close(g_ours, g_ref)
    v = torch.randn_like(g_ref)
    for a, b in zip(torch.autograd.grad((g_ours * v).sum(), params), torch.autograd.grad((g_ref * v).sum(), params)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kernels", [[3, 3], [5, 3]])
def test_pixelcnn_is_autoregressive(kernels):
    """d logit_i / d x_j = 0 for every j >= i (raster order), and != 0 for the pixels left of and above i."""
    torch.manual_seed(0)
    dec = PixelCNNDecoder(latent_dim=2, channels=4, kernels=kernels, skip=True).double()
    n = 28 * 28
    pixels = sorted(set(range(0, n, 11)) | {1, 27, 28, 29, 14 * 28 + 14, n - 1})
    # Row b of the batch: a copy of one image whose output pixel pixels[b] is differentiated.
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64).expand(len(pixels), 1, 28, 28).clone().requires_grad_(True)
    z = torch.randn(1, 2, dtype=torch.float64).expand(len(pixels), 2)
    logits = dec.logits(x, z).reshape(len(pixels), n)
    logits[torch.arange(len(pixels)), pixels].sum().backward()
    jac = dict(zip(pixels, x.grad.reshape(len(pixels), n)))  # jac[i][j] = d logit_i / d x_j
    for i, row in jac.items():
        assert torch.count_nonzero(row[i:]) == 0, i
    assert torch.count_nonzero(jac[0]) == 0  # the first pixel sees nothing
    i = 14 * 28 + 14  # an interior pixel sees its left neighbour and the row above
    assert jac[i][i - 1] != 0 and jac[i][i - 28] != 0 and jac[i][i - 28 + 1] != 0 and jac[i][i - 28 - 1] != 0
    assert jac[29][28] != 0 and jac[28][0] != 0 and jac[28][1] != 0  # the first pixels of row 1


# ---------------------------------------------------------------------------------------------------------
# Skip wiring
# ---------------------------------------------------------------------------------------------------------

def z_projection_grads(model: VAE) -> list[torch.Tensor]:
    """The gradient of every decoder weight that multiplies z, one per place z enters, in order."""
    dec, D = model.decoder, model.latent_dim
    if isinstance(dec, PixelCNNDecoder):  # one Linear(z, 784) per z-map
        return list(dec.z_maps.weight.grad.split(784))
    if isinstance(dec, LSTMDecoder):  # the z columns of each LSTM input matrix and of the output layer
        inputs = [rnn.weight_ih_l0 for rnn in dec.rnns]
        return [w.grad[:, -D:] for w in inputs] + ([dec.out.weight.grad[:, -D:]] if dec.skip else [])
    return [dec.z_in.weight.grad] + ([m.weight.grad for m in dec.z_skips] if dec.skip else [])


@pytest.mark.parametrize("arch", ["pixelcnn", "mlp", "lstm"])
def test_skip_wiring(arch):
    """With skips z reaches every decoder layer and the output (pixelcnn, lstm) or the first Linear(z) (mlp);
    without skips only the first layer."""
    layers = 3
    x = sentences() if arch == "lstm" else images()
    for model_name, expected in (("vae", 1), ("skip-vae", layers + 1)):
        model = tiny_model(model_name, arch, dec_layers=layers, dropout=0.0)
        model(x)["loss"].backward()
        grads = z_projection_grads(model)
        assert len(grads) == expected
        assert all(g.abs().sum() > 0 for g in grads)
    plain = tiny_model("vae", arch, dec_layers=layers).decoder
    if arch == "pixelcnn":
        assert [layer.v_conv.in_channels for layer in plain.layers] == [2, 4, 4]
        assert plain.out_conv.in_channels == 4
    elif arch == "lstm":
        assert plain.rnns[0].weight_ih_l0.shape[1] == 6 + 3 and plain.rnns[0].weight_ih_l1.shape[1] == 7
        assert plain.out.in_features == 7
    else:
        assert plain.z_skips is None and plain.out.in_features == 8


def test_mlp_output_layer_sees_no_z():
    """Official MLPVAE: z skips into the hidden layers only; fixing h_L fixes the logits."""
    model = tiny_model("skip-vae", "mlp")
    assert model.decoder.out.in_features == 8


# ---------------------------------------------------------------------------------------------------------
# Shapes, likelihoods, loss scale
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["pixelcnn", "mlp"])
@pytest.mark.parametrize("model_name", ["vae", "skip-vae", "sa-vae", "skip-sa-vae"])
def test_image_forward_shapes_and_loss(arch, model_name):
    model = tiny_model(model_name, arch)
    x = images()
    torch.manual_seed(3)
    out = model(x, beta=0.5)
    assert set(out) == {"loss", "rec", "kl", "mu", "logvar"}
    assert out["loss"].shape == () and out["rec"].shape == out["kl"].shape == (4,)
    assert out["mu"].shape == out["logvar"].shape == (4, 3)
    torch.testing.assert_close(out["loss"], (out["rec"] + 0.5 * out["kl"]).mean())
    torch.testing.assert_close(out["kl"], kl_to_prior(out["mu"], out["logvar"]))
    assert (out["kl"] >= 0).all()
    # An untrained decoder is close to a fair coin per pixel: rec ~ 784 log 2 per image.
    assert abs(out["rec"].mean().item() / (784 * math.log(2)) - 1) < 0.5
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("arch", ["pixelcnn", "mlp"])
def test_bernoulli_log_likelihood(arch):
    model = tiny_model("skip-vae", arch)
    x, z = images(), torch.randn(4, 3)
    p = torch.sigmoid(model.decoder.logits(x, z)).double()
    expected = (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    torch.testing.assert_close(model.log_likelihood(x, z).double(), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("model_name", ["vae", "skip-vae"])
def test_text_log_likelihood_sums_the_targets_only(model_name):
    model = tiny_model(model_name, "lstm", dec_layers=2)
    model.eval()
    x, z = sentences(), torch.randn(3, 3)
    logp = torch.log_softmax(model.decoder.logits(x, z), -1)
    target = x[:, 1:]
    manual = torch.stack([sum(logp[b, t, target[b, t]] for t in range(6) if target[b, t] != 0) for b in range(3)])
    ll = model.log_likelihood(x, z)
    torch.testing.assert_close(ll, manual)
    # Extra padding changes neither the likelihood nor the encoder.
    longer = torch.cat([x, torch.zeros(3, 4, dtype=torch.long)], 1)
    torch.testing.assert_close(model.log_likelihood(longer, z), ll)
    for a, b in zip(model.encode(longer), model.encode(x)):
        torch.testing.assert_close(a, b)
    # At U(-0.1, 0.1) init the predictive is near uniform: about log V nats per target token.
    n_targets = (target != 0).sum(1)
    assert torch.allclose(-ll / n_targets, torch.full((3,), math.log(VOCAB)), rtol=0.1)


def test_text_decoder_is_causal():
    """Changing token t+1 leaves the predictions of positions <= t unchanged (no peeking at the target)."""
    model = tiny_model("skip-vae", "lstm", dec_layers=2)
    model.eval()
    x, z = sentences(), torch.randn(3, 3)
    changed = x.clone()
    changed[0, 3] = 3 if x[0, 3] != 3 else 4
    a, b = model.decoder.logits(x, z), model.decoder.logits(changed, z)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[0, 3], b[0, 3])


def test_text_forward_and_init():
    model = tiny_model("skip-sa-vae", "lstm", init_uniform=0.1)
    assert all(p.abs().max() <= 0.1 for p in model.parameters())
    out = model(sentences(), beta=0.1)
    assert out["rec"].shape == out["kl"].shape == (3,)
    out["loss"].backward()
    assert model.encoder.embedding.weight.grad.abs().sum() > 0


def test_pixelcnn_init_is_he_normal():
    torch.manual_seed(0)
    model = build_model(make_config("mnist", "skip-vae", "smoke", latent_dim=50))
    w = model.decoder.z_maps.weight
    assert abs(w.std().item() / math.sqrt(2 / 50) - 1) < 0.05
    mlp = tiny_model("vae", "mlp")  # the official MLPVAE keeps PyTorch's defaults
    assert mlp.decoder.z_in.weight.abs().max() <= 1 / math.sqrt(3)


def test_reparameterize_and_kl():
    torch.manual_seed(0)
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, -1.0]])
    z = reparameterize(mu.expand(20000, 2), logvar.expand(20000, 2))
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), logvar[0].exp(), atol=0.03, rtol=0.03)
    expected = 0.5 * (1 + 4 + math.exp(0.5) + math.exp(-1) - 2 - 0.5 + 1)
    torch.testing.assert_close(kl_to_prior(mu, logvar), torch.tensor([expected]))
    assert kl_to_prior(torch.zeros(1, 4), torch.zeros(1, 4)).item() == 0.0


# ---------------------------------------------------------------------------------------------------------
# SA-VAE
# ---------------------------------------------------------------------------------------------------------

def test_clip_by_norm():
    g = torch.tensor([[3.0, 4.0]])
    torch.testing.assert_close(clip_by_norm(g, 1.0), g / (5 + 1e-6))
    torch.testing.assert_close(clip_by_norm(g, 10.0), g)


def test_svi_refine_on_a_quadratic():
    """f = 1/2 ||lambda||^2, g = lambda: m_0 = -g_0, m_k = momentum m_{k-1} - g_k, lambda += lr m_k."""
    f = lambda m, lv: 0.5 * (m.pow(2).sum() + lv.pow(2).sum())  # noqa: E731
    mu, logvar = torch.ones(2, 2), 2 * torch.ones(2, 2)
    m1, l1 = svi_refine(f, mu, logvar, steps=1, lr=0.25, momentum=0.5, max_norm=0, create_graph=False)
    torch.testing.assert_close(m1, 0.75 * mu)
    torch.testing.assert_close(l1, 0.75 * logvar)
    m2, _ = svi_refine(f, mu, logvar, steps=2, lr=0.25, momentum=0.5, max_norm=0, create_graph=False)
    torch.testing.assert_close(m2, (0.75 + 0.25 * (0.5 * -1 - 0.75)) * mu)  # 0.4375
    clipped, _ = svi_refine(f, mu, logvar, steps=1, lr=1.0, momentum=0.5, max_norm=1.0, create_graph=False)
    torch.testing.assert_close(clipped, mu - mu / (2 + 1e-6))  # ||g|| = ||mu|| = 2 over the whole batch


def expected_neg_elbo(model, x, mu, logvar, eps):
    """Negative ELBO per example, averaged over the noise eps [S, B, D] (the same eps for every posterior)."""
    with torch.no_grad():
        rec = torch.stack([-model.log_likelihood(x, mu + (0.5 * logvar).exp() * e) for e in eps]).mean(0)
    return rec + kl_to_prior(mu, logvar)


@pytest.mark.parametrize("arch", ["mlp", "pixelcnn"])
def test_refine_lowers_the_negative_elbo(arch):
    model = tiny_model("sa-vae", arch, svi_steps=10)
    model.eval()
    x = images(6)
    torch.manual_seed(0)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        mu_r, logvar_r = model.refine(x, mu, logvar, create_graph=False)
    assert not mu_r.requires_grad and not logvar_r.requires_grad
    eps = torch.randn(16, 6, 3)
    before, after = expected_neg_elbo(model, x, mu, logvar, eps), expected_neg_elbo(model, x, mu_r, logvar_r, eps)
    assert (after < before).all(), (before, after)


def test_refine_is_identity_for_amortized_models_and_deterministic_for_sa():
    model = tiny_model("vae", "mlp")
    x, mu, logvar = images(), torch.randn(4, 3), torch.randn(4, 3)
    out = model.refine(x, mu, logvar)
    assert out[0] is mu and out[1] is logvar
    sa = tiny_model("skip-sa-vae", "mlp")
    torch.manual_seed(5)
    a = sa.refine(x, mu, logvar)
    torch.manual_seed(5)
    b = sa.refine(x, mu, logvar)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[0], mu)


def test_sa_forward_in_eval_mode_needs_no_grad_context():
    model = tiny_model("sa-vae", "pixelcnn")
    model.eval()
    with torch.no_grad():
        out = model(images())
    assert torch.isfinite(out["loss"]) and not out["mu"].requires_grad


def finite_difference_check(model, x, checks, eps=1e-6):
    """Autograd's gradient of the training loss (fixed noise) against central differences, entry by entry."""
    def loss():
        torch.manual_seed(7)
        return model(x)["loss"]

    model.zero_grad()
    loss().backward()
    for param, idx in checks:
        analytic = param.grad[idx].item()
        with torch.no_grad():
            param[idx] += eps
            up = loss().item()
            param[idx] -= 2 * eps
            down = loss().item()
            param[idx] += eps
        numeric = (up - down) / (2 * eps)
        assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-6), (param.shape, idx, analytic, numeric)


@pytest.mark.parametrize("svi_clip", [1e3, 0.05])
def test_sa_end_to_end_gradient_matches_finite_differences(svi_clip):
    """The gradient of the refined ELBO w.r.t. encoder and decoder weights, through the K unrolled SVI steps
    (second derivatives by autograd), equals a central finite difference of the loss (fixed noise)."""
    model = tiny_model("skip-sa-vae", "mlp", svi_steps=3, svi_clip=svi_clip).double().train()
    enc, dec = model.encoder, model.decoder
    finite_difference_check(model, images(3).double(), [
        (enc.mean.weight, (0, 1)), (enc.logvar.bias, (2,)), (enc.mlp[0].weight, (3, 300)),
        (dec.z_skips[1].weight, (4, 0)), (dec.out.bias, (400,))])
    assert enc.mean.weight.grad.abs().sum() > 0  # the encoder learns only through the refinement


def test_sa_pixelcnn_end_to_end_gradient_matches_finite_differences():
    """The same through the PixelCNN's hand-written second derivatives (conv2d, gate, pad2d)."""
    model = tiny_model("skip-sa-vae", "pixelcnn", svi_steps=2, enc_channels=2, dec_layers=2, dec_channels=2)
    model = model.double().train()
    enc, dec = model.encoder, model.decoder
    finite_difference_check(model, images(2).double(), [
        (enc.mean.weight, (1, 5)), (dec.layers[0].v_conv.weight, (1, 0, 0, 2)), (dec.layers[1].vh_conv.bias, (3,)),
        (dec.layers[1].h_conv.weight, (0, 2, 0, 1)), (dec.layers[1].h_res.weight, (1, 0, 0, 0)),
        (dec.layers[0].h_out.weight, (0, 1, 0, 0)), (dec.z_maps.weight, (800, 1)), (dec.out_conv.weight, (0, 2, 0, 0))])


def test_sa_text_double_backward():
    model = tiny_model("sa-vae", "lstm", dec_layers=2)
    model(sentences())["loss"].backward()
    assert model.encoder.rnn.weight_hh_l0.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------
# Error paths
# ---------------------------------------------------------------------------------------------------------

def test_build_model_errors():
    with pytest.raises(ConfigError, match="RunConfig"):
        build_model({"arch": "mlp"})
    text = tiny_cfg(arch="lstm")
    with pytest.raises(ConfigError, match="vocab_size"):
        build_model(text)
    for bad in (3, 0, "20000", True, 5.0):
        with pytest.raises(ConfigError, match="vocab_size"):
            build_model(text, vocab_size=bad)
    cfg = tiny_cfg()
    cfg.arch = "gru"
    with pytest.raises(ConfigError, match="unknown arch"):
        build_model(cfg)
    cfg = tiny_cfg()
    cfg.dec_kernels = [3]
    with pytest.raises(ConfigError, match="dec_kernels"):
        build_model(cfg)
    cfg = tiny_cfg(arch="lstm")
    cfg.init_uniform = -0.1
    with pytest.raises(ConfigError, match="init_uniform"):
        build_model(cfg, vocab_size=VOCAB)
    with pytest.raises(ConfigError, match="odd"):
        GatedMaskedConv2d(2, 4, 4, first=True)


@pytest.mark.parametrize("bad, match", [
    ([[0.0]], "torch.Tensor"),
    (torch.zeros(0, 1, 28, 28), "empty"),
    (torch.tensor(0.5), "empty"),
    (torch.zeros(2, 28, 28), r"\[B, 1, 28, 28\]"),
    (torch.zeros(2, 1, 32, 32), r"\[B, 1, 28, 28\]"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.long), "float"),
    (torch.full((2, 1, 28, 28), 255.0), r"\[0, 1\]"),
    (torch.full((2, 1, 28, 28), -0.5), r"\[0, 1\]"),
    (torch.full((2, 1, 28, 28), float("nan")), "NaN"),
])
def test_image_input_errors(bad, match):
    model = tiny_model("sa-vae", "mlp")
    z = torch.zeros(2, 3)
    for call in (lambda: model.encode(bad), lambda: model(bad), lambda: model.log_likelihood(bad, z),
                 lambda: model.refine(bad, z, z)):
        with pytest.raises(DataError, match=match):
            call()


@pytest.mark.parametrize("bad, match", [
    (torch.ones(3, 7), "LongTensor"),
    (torch.ones(7, dtype=torch.long), "LongTensor"),
    (torch.ones(3, 1, dtype=torch.long), "T >= 2"),
    (torch.full((3, 4), VOCAB, dtype=torch.long), "vocabulary"),
    (torch.full((3, 4), -1, dtype=torch.long), "vocabulary"),
    (torch.tensor([[1, 0, 0], [1, 5, 2]]), "at least one target"),
])
def test_text_input_errors(bad, match):
    model = tiny_model("vae", "lstm")
    with pytest.raises(DataError, match=match):
        model.encode(bad)
    with pytest.raises(DataError, match=match):
        model(bad)


def test_latent_errors():
    model = tiny_model("sa-vae", "mlp")
    x = images(2)
    for z in (torch.zeros(3, 3), torch.zeros(2, 4), torch.zeros(2, 3, dtype=torch.long), [[0.0] * 3] * 2):
        with pytest.raises(DataError, match=r"\[2, 3\]"):
            model.log_likelihood(x, z)
    with pytest.raises(DataError, match="mu must be"):
        model.refine(x, torch.zeros(1, 3), torch.zeros(2, 3))
    with pytest.raises(DataError, match="logvar must be"):
        model.refine(x, torch.zeros(2, 3), torch.zeros(2, 2))


# --- bf16 autocast ------------------------------------------------------------------------------------------

BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_fp32_ops_are_unchanged_outside_autocast():
    """Outside autocast the casts are identities: conv2d and its gradients equal F.conv2d's bit for bit."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 6, (2, 3), padding=(1, 1)).to(memory_format=torch.channels_last)
    x = torch.randn(3, 5, 7, 7).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.autocast(**BF16, enabled=False):
        y = conv2d(x, conv)
    y_ref = F.conv2d(x, conv.weight, conv.bias, padding=(1, 1))
    assert y.dtype == torch.float32 and torch.equal(y, y_ref)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, conv.weight, conv.bias), g)
    ref = torch.autograd.grad(y_ref, (x, conv.weight, conv.bias), g)
    assert all(torch.equal(a, b) for a, b in zip(got, ref))


def test_bf16_ops_first_and_second_derivatives_close_to_fp32():
    """conv2d + gate under bf16 autocast: forward, gradient and gradient-of-gradient (SA-VAE) within bf16
    tolerance of fp32, and fp32 gradients for the fp32 parameters."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 8, (2, 3), padding=(1, 1)).to(memory_format=torch.channels_last)
    x0 = torch.randn(3, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    z_map = torch.randn(3, 1, 7, 6)

    def run(amp: bool):
        x = x0.clone().requires_grad_(True)
        with torch.autocast(**BF16, enabled=amp):
            y = gate(conv2d(x, conv), z_map).float()
            f = (y * y.detach().sin()).sum()
            gx, = torch.autograd.grad(f, x, create_graph=True)
        (gw,) = torch.autograd.grad((gx * gx).sum(), conv.weight)
        return y, gx, gw

    y32, gx32, gw32 = run(False)
    y16, gx16, gw16 = run(True)
    assert gw16.dtype == torch.float32 and gx16.dtype == torch.float32
    assert rel_err(y16, y32) < 2e-2
    assert rel_err(gx16, gx32) < 3e-2
    assert rel_err(gw16, gw32) < 5e-2


@pytest.mark.parametrize("arch", ["pixelcnn", "mlp", "lstm"])
@pytest.mark.parametrize("model_name", ["vae", "skip-sa-vae"])
def test_bf16_autocast_training_step_close_to_fp32(arch, model_name):
    """A training step under bf16 autocast: the loss and KL come out fp32, the parameter gradients are fp32
    and close to the fp32 step's (same noise), for every architecture and with SVI refinement."""
    if arch == "lstm" and not cpu_has_bf16():
        pytest.skip("this CPU has no bf16 kernels: oneDNN cannot build a bf16 LSTM (training refuses amp there)")
    model = tiny_model(model_name, arch, dropout=0.0)
    x = sentences() if arch == "lstm" else images()
    out, grads = {}, {}
    for amp in (False, True):
        model.zero_grad()
        torch.manual_seed(3)
        with torch.autocast(**BF16, enabled=amp):
            o = model(x)
        o["loss"].backward()
        out[amp] = o
        grads[amp] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
    for key in ("loss", "rec", "kl", "mu", "logvar"):
        assert out[True][key].dtype == torch.float32
    assert abs(out[True]["loss"].item() - out[False]["loss"].item()) < 1e-2 * abs(out[False]["loss"].item())
    assert rel_err(grads[True], grads[False]) < 0.1


@pytest.mark.slow  # inductor compiles C++ (about half a minute)
@pytest.mark.parametrize("skip", [False, True])
def test_the_pixelcnn_compiles_as_one_graph_to_the_same_loss_and_gradients(skip):
    """Under torch.compile the hand-written ops are their plain equivalents: dynamo traces the decoder without a
    graph break (a break per layer recompiled the layer past dynamo's recompile limit), and the compiled
    log-likelihood and its gradients equal eager's up to rounding."""
    torch.manual_seed(0)
    dec = PixelCNNDecoder(latent_dim=3, channels=4, kernels=[3, 5, 3], skip=skip)
    x = torch.rand(2, 1, 28, 28).round().contiguous(memory_format=torch.channels_last)
    z = torch.randn(2, 3)

    def loss(x, z):
        return dec.log_likelihood(x, z).sum()

    assert torch._dynamo.explain(loss)(x, z).graph_break_count == 0
    eager = loss(x, z)
    g_eager = torch.autograd.grad(eager, list(dec.parameters()))
    torch._dynamo.reset()
    compiled = torch.compile(loss, dynamic=False)(x, z)
    g_compiled = torch.autograd.grad(compiled, list(dec.parameters()))
    assert compiled.item() == pytest.approx(eager.item(), rel=1e-5)
    for a, b in zip(g_eager, g_compiled):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
